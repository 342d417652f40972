"""Who is champion: how a new registered version is set against the one serving follows.

The ``champion`` alias moves to a new version only when

* its protocol fingerprint and primary metric equal the champion's (the same exam) and its
  figure is strictly higher (all primary metrics are higher-is-better); or
* there is no such champion (none yet, or one tested on other data, under another protocol,
  by another metric, or without a fingerprint) and the version passes the gate: no requested
  model failed and the chosen model beats popularity on its own test by more than the margin
  (default 5% of popularity's figure).

Figures from different exams are never set against each other. The decision
(:class:`PromotionDecision`) and a sentence giving its reason are tagged on the run and the
version (:mod:`training.tracking.tags` holds what is compared).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from training.tracking.store import CHAMPION_ALIAS
from training.tracking.tags import (
    BASELINE_MODEL,
    TAG_DECISION,
    TAG_PRIMARY_METRIC,
    TAG_PRIMARY_VALUE,
    TAG_PROTOCOL_FINGERPRINT,
    TAG_REASON,
    TAG_TEST_FINGERPRINT,
    baseline_value,
    failures,
    primary_value,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient


class PromotionDecision(StrEnum):
    """How the champion question of a new version was settled."""

    #: same test data and protocol as the champion, and a strictly better figure there
    BEAT_CHAMPION = "beat_champion"
    #: same test data and protocol as the champion, and not better there
    KEPT_CHAMPION = "kept_champion"
    #: no champion it can be compared with; beats popularity by the margin, nothing failed
    GATE_PASSED = "gate_passed"
    #: no champion it can be compared with, and the gate above was not passed
    GATE_FAILED = "gate_failed"

    @property
    def promotes(self) -> bool:
        """Whether the champion alias moves to the new version."""
        return self in (PromotionDecision.BEAT_CHAMPION, PromotionDecision.GATE_PASSED)


@dataclass(frozen=True)
class Promotion:
    """A decision and the sentence that explains it (logged on the run and the version)."""

    decision: PromotionDecision
    reason: str


@dataclass(frozen=True)
class _Standing:
    """What a version is ranked by, read from its tags; a missing tag reads as None."""

    primary_metric: str | None
    value: float | None
    test_fingerprint: str | None
    protocol_fingerprint: str | None

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> _Standing:
        try:
            value: float | None = float(tags[TAG_PRIMARY_VALUE])
        except (KeyError, ValueError):
            value = None
        return cls(
            tags.get(TAG_PRIMARY_METRIC),
            value,
            tags.get(TAG_TEST_FINGERPRINT),
            tags.get(TAG_PROTOCOL_FINGERPRINT),
        )


def current_champion(client: MlflowClient, name: str) -> tuple[str, _Standing] | None:
    """(version, standing) of ``name``'s champion, or None when no version holds the alias."""
    version = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    if version is None:
        return None
    return str(version), _Standing.of(client.get_model_version(name, str(version)).tags)


def decide(
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    champion: tuple[str, _Standing] | None,
    margin: float,
) -> Promotion:
    """Compare with the champion where both took the same exam; otherwise apply the gate,
    also to a first version, so that the alias serving follows never lands on a model that
    does not clear popularity or came from a run where a requested model failed."""
    if champion is None:
        return _gated(metrics, margin, "no champion yet")
    version, held = champion
    candidate = _Standing.of(tags)
    unlike = _why_not_comparable(candidate, held)
    if unlike is not None:
        return _gated(metrics, margin, f"not comparable with champion v{version} ({unlike})")
    return _compared(candidate, held, version)


def record(
    client: MlflowClient, run_id: str, name: str, version: str, promotion: Promotion
) -> None:
    """Write the decision and its reason on the run and on the version."""
    for key, value in ((TAG_DECISION, promotion.decision.value), (TAG_REASON, promotion.reason)):
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(name, version, key, value)


def _why_not_comparable(candidate: _Standing, champion: _Standing) -> str | None:
    """Why the two test figures cannot be set against each other; None when they can."""
    if candidate.protocol_fingerprint is None:
        return "this run's metrics carry no test fingerprint"
    if champion.protocol_fingerprint is None or champion.value is None:
        return "its tags carry no test fingerprint or figure"
    if candidate.test_fingerprint != champion.test_fingerprint:
        return "tested on other data"
    if candidate.protocol_fingerprint != champion.protocol_fingerprint:
        return "same test data under another protocol"
    if candidate.primary_metric != champion.primary_metric:
        return f"ranked by {champion.primary_metric}, this run by {candidate.primary_metric}"
    return None


def _compared(candidate: _Standing, champion: _Standing, version: str) -> Promotion:
    """The verdict of a like-for-like comparison; a tie keeps the champion."""
    assert candidate.value is not None and champion.value is not None  # _why_not_comparable
    figures = f"{candidate.value:.4f} {{}} champion v{version}'s {champion.value:.4f}"
    if candidate.value > champion.value:
        reason = "same test data and protocol: " + figures.format(">")
        return Promotion(PromotionDecision.BEAT_CHAMPION, reason)
    reason = "same test data and protocol: " + figures.format("does not beat")
    return Promotion(PromotionDecision.KEPT_CHAMPION, reason)


def _gated(metrics: Mapping[str, Any], margin: float, context: str) -> Promotion:
    """The gate of a version without a comparable champion: every requested model ran, and
    the chosen one beats popularity on its own test by more than ``margin`` (relative)."""
    problems = [_failure_text(failure) for failure in failures(metrics)]
    passed, comparison = _against_baseline(metrics, margin)
    if passed and not problems:
        return Promotion(PromotionDecision.GATE_PASSED, f"{context}; gate passed: {comparison}")
    if not passed:
        problems.append(comparison)
    return Promotion(
        PromotionDecision.GATE_FAILED, f"{context}; gate failed: {'; '.join(problems)}"
    )


#: How a failure's stage reads after "<model> failed ..."; other stages read "at <stage>".
_STAGE_WORDS = {
    "tuning": "in tuning",
    "test fit": "to fit for the test",
    "refit": "to refit on all the data",
}
#: Longest failure reason quoted in a decision (MLflow caps tag values at a few thousand
#: characters, and a decision names every failure).
_REASON_CHARS = 200


def _failure_text(failure: Mapping[str, Any]) -> str:
    """``lightfm failed to fit: <reason>``, the reason cut short if long."""
    stage = str(failure.get("stage", ""))
    words = _STAGE_WORDS.get(stage, f"at {stage or 'an unnamed stage'}")
    reason = " ".join(str(failure.get("reason", "")).split())
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 1] + "…"
    text = f"{failure.get('model', 'a model')} failed {words}"
    return f"{text}: {reason}" if reason else text


def _against_baseline(metrics: Mapping[str, Any], margin: float) -> tuple[bool, str]:
    """Whether the chosen model's test figure is more than ``margin`` above popularity's, and
    the figures that say so."""
    chosen, primary = metrics["chosen"], metrics["primary_metric"]
    baseline = baseline_value(metrics)
    if baseline is None:
        return False, f"the metrics have no popularity baseline figure of {primary}"
    if chosen == BASELINE_MODEL:
        return False, "the chosen model is the popularity baseline itself"
    value, bar = primary_value(metrics), f"(margin {margin * 100:g}%)"
    passed = value > baseline * (1 + margin)
    if baseline <= 0:
        relation = "beats" if passed else "does not beat"
        return passed, f"{chosen} {value:.4f} {relation} popularity's {baseline:.4f} {bar}"
    lift = value / baseline - 1
    if passed:
        return True, f"{chosen} {value:.4f} beats popularity {baseline:.4f} by {lift:.1%} {bar}"
    if lift == 0:
        relation = "level with"
    else:
        relation = f"only {lift:.1%} above" if lift > 0 else f"{-lift:.1%} below"
    return False, f"{chosen} {value:.4f} is {relation} popularity {baseline:.4f} {bar}"
