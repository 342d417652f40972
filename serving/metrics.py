"""Prometheus metrics of the service, and their exposition for GET /metrics.

With several workers, each is its own process: ``prometheus_client``'s multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, which ``recsys serve`` sets) keeps each worker's values in a
memory-mapped file and /metrics adds them up, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from serving.snapshots import ModelSnapshot

__all__ = [
    "CONTENT_TYPE_LATEST",
    "EVENTS",
    "FALLBACKS",
    "IMPRESSIONS_DROPPED",
    "RECOMMENDATIONS",
    "RELOADS",
    "REQUESTS",
    "REQUEST_SECONDS",
    "model_loaded",
    "render",
    "request_done",
    "served",
]

#: Latency buckets around the storefront's budget (milliseconds matter, seconds are failures).
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_SECONDS = Histogram(
    "recsys_http_request_duration_seconds",
    "Time to answer a request, by route template.",
    ["method", "route"],
    buckets=_BUCKETS,
)
REQUESTS = Counter(
    "recsys_http_requests", "Requests answered, by route template and status.",
    ["method", "route", "status"],
)  # fmt: skip
RECOMMENDATIONS = Counter(
    "recsys_recommendations", "Lists served, by variant and answering model.", ["variant", "model"]
)
FALLBACKS = Counter(
    "recsys_fallbacks",
    "Lists that popularity or content answered or completed instead of the model.",
    ["variant"],
)
MODEL_INFO = Gauge(
    "recsys_model_info",
    "1 for the model artifact version a variant serves (per live worker: the max over workers).",
    ["variant", "version"],
    multiprocess_mode="livemax",
)
RELOADS = Counter(
    "recsys_model_reloads",
    "Reloads by outcome: swapped (a new version serves), unchanged (the source held the "
    "loaded version), refused (the model artifact failed verification), unavailable (the source "
    "could not be read).",
    ["variant", "outcome"],
)
EVENTS = Counter(
    "recsys_events", "Events received, by type and outcome (stored, duplicate, erased).",
    ["event", "outcome"],
)  # fmt: skip
IMPRESSIONS_DROPPED = Counter(
    "recsys_impressions_dropped",
    "Served-list records dropped because the event store was unreachable for too long.",
)


# Labelled children, looked up once per label set: ``labels()`` validates and locks on every
# call, a cost that every storefront request paid several times.


@cache
def _latency(method: str, route: str) -> Histogram:
    return REQUEST_SECONDS.labels(method, route)


@cache
def _requests(method: str, route: str, status: int) -> Counter:
    return REQUESTS.labels(method, route, str(status))


@cache
def _served(variant: str, model: str) -> Counter:
    return RECOMMENDATIONS.labels(variant, model)


@cache
def _fallbacks(variant: str) -> Counter:
    return FALLBACKS.labels(variant)


def request_done(method: str, route: str, status: int, seconds: float) -> None:
    """Record one answered request (the route template keeps the label set bounded)."""
    _latency(method, route).observe(seconds)
    _requests(method, route, status).inc()


def served(variant: str, model: str, *, fallback: bool) -> None:
    """Record one served list."""
    _served(variant, model).inc()
    if fallback:
        _fallbacks(variant).inc()


def model_loaded(variant: str, snapshot: ModelSnapshot, previous: str | None) -> None:
    """Record a swap: the new version's info series is 1, the previous one's 0."""
    if previous is not None and previous != snapshot.version:
        MODEL_INFO.labels(variant=variant, version=previous).set(0)
    MODEL_INFO.labels(variant=variant, version=snapshot.version).set(1)
    RELOADS.labels(variant=variant, outcome="swapped").inc()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type; all workers' values in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
