"""The tags a registered version carries: what the champion decision and a person browsing the
registry read.

Every version carries its chosen model (chosen on validation only), the primary metric and the
chosen model's test figure of it, the popularity baseline's test figure, the number of requested
models that failed, the promotion margin, the training data's fingerprint, the test
interactions' fingerprint and a protocol fingerprint (the test fingerprint with the protocol
fields that change what a test figure means, :func:`protocol_fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.errors import ConfigError
from training.tracking.store import ARTIFACT_MANIFEST

TAG_CHOSEN = "chosen_model"
TAG_PRIMARY_METRIC = "primary_metric"
TAG_PRIMARY_VALUE = "primary_metric_value"
TAG_FINGERPRINT = "data_fingerprint"
TAG_TEST_FINGERPRINT = "test_fingerprint"
TAG_PROTOCOL_FINGERPRINT = "protocol_fingerprint"
TAG_BASELINE_VALUE = "baseline_value"
TAG_FAILED = "failed_models"
TAG_MARGIN = "promotion_margin"
TAG_DECISION = "promotion_decision"
TAG_REASON = "promotion_reason"

#: The stage ``training.train`` records a failed tuning trial under.
_TRIAL_FAILURE_STAGE = "tuning trial"
#: The popularity baseline's name in metrics (``PopularityRecommender.name``, spelled out
#: because importing ``training.models`` loads every model library).
BASELINE_MODEL = "popular"
#: Protocol fields that, besides the test rows themselves, change what a test figure means:
#: the split decides what the model may have seen relative to the test rows (a random split
#: lets training hold events later than the test's, a time split does not); the relevant
#: events, ``new_items_only`` and ``exclude`` decide which test items count as hits and which
#: may be recommended; ``evaluated_members`` is how many members the average is over. Train
#: counts, the validation split and the tuning budget are left out: they shape the model and its
#: choice, not the exam, and comparing what they produce on one exam is the point.
PROTOCOL_FIELDS = ("split", "relevant_events", "new_items_only", "exclude", "evaluated_members")


def version_tags(metrics: Mapping[str, Any], artifact_dir: Path, margin: float) -> dict[str, str]:
    """Tags the champion decision and a human browsing the registry read."""
    tags = {
        TAG_CHOSEN: str(metrics["chosen"]),
        TAG_PRIMARY_METRIC: str(metrics["primary_metric"]),
        TAG_PRIMARY_VALUE: repr(primary_value(metrics)),
        TAG_MARGIN: repr(margin),
        TAG_FAILED: str(len({failure.get("model") for failure in failures(metrics)})),
    }
    baseline = baseline_value(metrics)
    optional = {
        TAG_FINGERPRINT: _fingerprint(metrics, artifact_dir),
        TAG_TEST_FINGERPRINT: (metrics.get("protocol") or {}).get(TAG_TEST_FINGERPRINT),
        TAG_PROTOCOL_FINGERPRINT: protocol_fingerprint(metrics),
        TAG_BASELINE_VALUE: None if baseline is None else repr(baseline),
    }
    return {**tags, **{key: str(value) for key, value in optional.items() if value is not None}}


def primary_value(metrics: Mapping[str, Any]) -> float:
    """The chosen model's test figure of the primary metric: what champions are ranked by."""
    chosen, primary = metrics["chosen"], metrics["primary_metric"]
    try:
        return float(metrics["models"][chosen][primary])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"metrics have no test {primary!r} for the chosen model {chosen!r}; "
            "nothing to rank the registered version by"
        ) from None


def baseline_value(metrics: Mapping[str, Any]) -> float | None:
    """The popularity baseline's test figure of the primary metric; None in metrics written
    before the baseline was evaluated on every run."""
    try:
        return float(metrics["models"][BASELINE_MODEL][metrics["primary_metric"]])
    except (KeyError, TypeError, ValueError):
        return None


def failures(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The failures of requested models (in tuning, the test fit, the refit, ...). A failed
    tuning trial is not one: the model was still tuned and tested, one set of its parameters
    was not. Metrics without the list come from runs that stopped at the first failure, so a
    run that wrote them had none."""
    return [
        failure
        for failure in metrics.get("failed") or []
        if failure.get("stage") != _TRIAL_FAILURE_STAGE
    ]


def protocol_fingerprint(metrics: Mapping[str, Any]) -> str | None:
    """A sha256 hex digest of the test interactions' fingerprint and of the protocol fields that
    change what a test figure means (:data:`PROTOCOL_FIELDS`, and the evaluation sample's size
    and seed when members were sampled); two versions with the same digest took the same exam.
    None when the metrics carry no test fingerprint: such a version is comparable with none.
    """
    protocol = metrics.get("protocol") or {}
    test = protocol.get(TAG_TEST_FINGERPRINT)
    if not test:
        return None
    described = {
        TAG_TEST_FINGERPRINT: test,
        **{field: protocol.get(field) for field in PROTOCOL_FIELDS},
        "evaluation_sample": _evaluation_sample(metrics),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _evaluation_sample(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The size and seed of the evaluated members' sample when one was drawn (as many members
    evaluated as the cap allows): another seed then scores other members on the same rows.
    None when every evaluable member was scored, where the seed changes nothing."""
    config = metrics.get("config") or {}
    cap = config.get("max_eval_members")
    evaluated = (metrics.get("protocol") or {}).get("evaluated_members")
    if cap is None or evaluated is None or evaluated < cap:
        return None
    return {"max_eval_members": cap, "seed": config.get("seed")}


def _fingerprint(metrics: Mapping[str, Any], artifact_dir: Path) -> str | None:
    """The training data's fingerprint: from the protocol, else from the artifact's manifest."""
    protocol = metrics.get("protocol") or {}
    if TAG_FINGERPRINT in protocol:
        return protocol[TAG_FINGERPRINT]
    return json.loads((artifact_dir / ARTIFACT_MANIFEST).read_text()).get(TAG_FINGERPRINT)
