"""Replay a test period against a running server: the CTR report end to end, and load.

For each member of the test interactions (in order of their first test event), the
simulator asks the server for recommendations, then posts what a storefront would: an
impression for every served item, a click for each served item the member really interacted
with in the test period, and a purchase for each one they bought, all quoting the list's
``recommendation_id``. The CTR report then shows how often each model or variant served
what members went on to want. Requests run on ``concurrency`` threads with keep-alive
connections, so the same command doubles as a load generator.

Only the standard library's HTTP client is used: the simulator must run wherever the service
is installed, without the test dependencies.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import numpy as np
import polars as pl

from features import columns as col
from features.errors import ConfigError
from serving.schemas import EventType

__all__ = ["Client", "MemberTruth", "SimulationSummary", "members_to_replay", "simulate"]

_TIMEOUT_SECONDS = 30.0
_INTERACTIONS = (col.CLICK, col.CART, col.PURCHASE)


@dataclass(frozen=True)
class MemberTruth:
    """What one test member did in the test period."""

    member_id: str
    interacted: frozenset[str]
    purchased: frozenset[str]


@dataclass
class SimulationSummary:
    """What a replay did and how the server answered."""

    members: int = 0
    requests: int = 0
    failures: int = 0
    impressions: int = 0
    clicks: int = 0
    purchases: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    report: Mapping[str, Any] | None = None

    def latency_percentile(self, percent: float) -> float | None:
        return float(np.percentile(self.latencies_ms, percent)) if self.latencies_ms else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "requests": self.requests,
            "failures": self.failures,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "purchases": self.purchases,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else None,
            "latency_p50_ms": self.latency_percentile(50),
            "latency_p99_ms": self.latency_percentile(99),
            "report": self.report,
        }


def members_to_replay(test: pl.DataFrame, limit: int | None = None) -> list[MemberTruth]:
    """Test members in the order of their first test event, with what they did."""
    if col.EVENT not in test.columns:
        test = test.with_columns(pl.lit(col.DEFAULT_EVENT).alias(col.EVENT))
    grouped = (
        test.filter(pl.col(col.EVENT).is_in(_INTERACTIONS))
        .group_by(col.MEMBER_ID)
        .agg(
            pl.col(col.TIMESTAMP).min().alias("first"),
            pl.col(col.ITEM_ID).unique().alias("interacted"),
            pl.col(col.ITEM_ID).filter(pl.col(col.EVENT) == col.PURCHASE).unique().alias("bought"),
        )
        .sort("first", col.MEMBER_ID)
    )
    if limit is not None:
        grouped = grouped.head(limit)
    return [
        MemberTruth(str(member), frozenset(interacted), frozenset(bought))
        for member, _, interacted, bought in grouped.iter_rows()
    ]


class Client:
    """One keep-alive connection per thread to the server at ``url`` (the campaign replay,
    :mod:`cli.campaign_replay`, talks to the server through it too)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"--url {url!r}: give the server's base URL, e.g. http://127.0.0.1:8000"
            )
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["X-API-Key"] = api_key
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=_TIMEOUT_SECONDS)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON body); a dropped keep-alive connection is retried once."""
        payload = None if body is None else json.dumps(body).encode()
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, self._base + path, payload, self._headers)
                response = connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
                continue
            return response.status, json.loads(data) if data else None
        raise AssertionError("unreachable")


def _events_for(served: Mapping[str, Any], truth: MemberTruth) -> list[dict[str, str]]:
    """Impressions of every served item, clicks and purchases of those the member wanted."""
    recommendation_id = served["recommendation_id"]
    events = []
    for item in served["items"]:
        item_id = item["item_id"]
        kinds = [EventType.IMPRESSION]
        if item_id in truth.interacted:
            kinds.append(EventType.CLICK)
        if item_id in truth.purchased:
            kinds.append(EventType.PURCHASE)
        events.extend(
            {
                "event_id": f"sim-{recommendation_id}-{item_id}-{kind}",
                "event": kind,
                "member_id": truth.member_id,
                "item_id": item_id,
                "recommendation_id": recommendation_id,
            }
            for kind in kinds
        )
    return events


def simulate(
    url: str,
    members: Sequence[MemberTruth],
    *,
    api_key: str | None = None,
    n: int = 10,
    concurrency: int = 8,
    on_progress: Callable[[int], None] = lambda _: None,
) -> SimulationSummary:
    """Replay ``members`` against the server at ``url`` and fetch the CTR report."""
    client = Client(url, api_key)
    summary = SimulationSummary(members=len(members))
    lock = threading.Lock()
    done = 0

    def replay(truth: MemberTruth) -> None:
        nonlocal done
        started = time.perf_counter()
        query = urlencode({"n": n})
        status, served = client.request(
            "GET", f"/v1/members/{quote(truth.member_id, safe='')}/recommendations?{query}"
        )
        latency = (time.perf_counter() - started) * 1000
        events = _events_for(served, truth) if status == 200 else []
        posted = client.request("POST", "/v1/events", events)[0] if events else 200
        with lock:
            summary.requests += 1 + bool(events)
            summary.failures += (status != 200) + (posted != 200)
            summary.latencies_ms.append(latency)
            if posted == 200:
                for event in events:
                    kind = event["event"]
                    summary.impressions += kind == EventType.IMPRESSION
                    summary.clicks += kind == EventType.CLICK
                    summary.purchases += kind == EventType.PURCHASE
            done += 1
            on_progress(done)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(replay, members))  # re-raises the first replay that failed outright
    summary.seconds = time.perf_counter() - started
    status, report = client.request("GET", "/v1/reports/ctr?group_by=variant")
    summary.report = report if status == 200 else None
    return summary
