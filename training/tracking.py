"""MLflow tracking and registry for training runs: log, register, pick the champion, download.

One training run becomes one MLflow parent run (protocol as params, the chosen model's test
metrics, metrics.json, report.html and the plots as artifacts) with one nested child run per
model (its tuned params, its test metrics, its validation metrics as ``val_*``, its timings).

**How the bundle is registered.** The bundle directory is logged as the parent run's artifact
directory ``bundle/`` and a model version is created whose *source* is that directory
(``MlflowClient.create_model_version``). Downloading ``models:/<name>/<version>`` or
``models:/<name>@<alias>`` therefore yields exactly the bundle's files, which serving loads
with ``training.bundle.load_bundle`` like any other bundle. A pyfunc wrapper
(``mlflow.pyfunc.log_model`` with the bundle as an artifact) was not used: it would pickle a
Python class into the registry, nest the bundle one level down (``artifacts/bundle``), and
importing ``mlflow.pyfunc`` alone emits warnings and takes seconds — for a model that nothing
ever loads through pyfunc, since the bundle format is already the serving contract.

**Champion.** Every version carries as tags its chosen model (chosen on validation only), the
primary metric and the chosen model's test figure of it, the popularity baseline's test figure,
the number of requested models that failed, the promotion margin, the training data's
fingerprint, the test interactions' fingerprint and a protocol fingerprint (the test
fingerprint with the protocol fields that change what a test figure means,
:func:`protocol_fingerprint`). The ``champion`` alias moves to a new version only when

* its protocol fingerprint and primary metric equal the champion's (the same exam) and its
  figure is strictly higher (all primary metrics are higher-is-better); or
* there is no such champion (none yet, or one tested on other data, under another protocol,
  by another metric, or without a fingerprint) and the version passes the gate: no requested
  model failed and the chosen model beats popularity on its own test by more than the margin
  (default 5% of popularity's figure).

Figures from different exams are never set against each other. The decision
(:class:`PromotionDecision`) and a sentence giving its reason are tagged on the run and the
version and returned in :class:`TrackingResult`. ``promote`` moves any alias by hand.

MLflow is imported inside the functions: importing it takes seconds, and most ``recsys``
commands never track anything. Everything goes through an explicit ``MlflowClient`` for the
given tracking URI, so MLflow's process-wide active run and tracking/registry URIs are never
set; only its log level and artifact progress-bar default are (see ``_quiet_mlflow``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import ConfigError
from training.config import DEFAULT_PROMOTION_MARGIN
from training.report import save_figures, write_report

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "CHAMPION_ALIAS",
    "DEFAULT_PROMOTION_MARGIN",
    "PROTOCOL_FIELDS",
    "Promotion",
    "PromotionDecision",
    "TrackingResult",
    "default_tracking_uri",
    "download_artifact",
    "log_training_run",
    "metric_key",
    "promote",
    "protocol_fingerprint",
    "resolve_model_uri",
]

CHAMPION_ALIAS = "champion"
MLFLOW_ARTIFACT_PATH = "artifact"
FIGURES_ARTIFACT = "figures"
#: ``training.bundle.MANIFEST``, spelled out because importing ``training.bundle`` loads every
#: model library; a downloaded directory without it is not a bundle.
ARTIFACT_MANIFEST = "manifest.json"

#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (stages are deprecated in MLflow).
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")

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


@dataclass(frozen=True)
class TrackingResult:
    """What ``log_training_run`` did: the run, the new model version, who is champion (None:
    no version is) and why."""

    run_id: str
    model_version: str
    became_champion: bool
    champion_version: str | None
    decision: PromotionDecision
    reason: str


# -- connection --------------------------------------------------------------------------------


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in the data directory, so that runs of
    one project land in one place whatever the working directory (absolute path)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    data_dir = Path(os.environ.get("RECSYS_DATA_DIR", "data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'mlflow.db'}"


def _quiet_mlflow() -> None:
    """Quieten MLflow's chatter (database migration INFO lines, artifact progress bars on
    stderr) that would drown the CLI's output; an explicit progress-bar setting is kept."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # configures its loggers on import, so the level is set after

    logging.getLogger(mlflow.__name__).setLevel(logging.WARNING)


def _client(tracking_uri: str) -> MlflowClient:
    """A quiet client for tracking and registry, both at ``tracking_uri``."""
    _quiet_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a new experiment next to a SQLite database (``mlartifacts/``); MLflow's
    own default for a SQLite store is ``./mlruns`` under whatever the working directory is.
    Other stores (a tracking server) choose for themselves."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix + ":memory:":
        return None
    database = Path(tracking_uri.removeprefix(prefix)).resolve()
    return (database.parent / "mlartifacts").as_uri()


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_root(tracking_uri))


# -- runs --------------------------------------------------------------------------------------


def metric_key(name: str) -> str:
    """MLflow name of a metric: ``precision@10`` -> ``precision_at_10`` ('@' is not allowed)."""
    return name.replace("@", "_at_")


def _numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """MLflow metrics of the numeric entries of ``values`` (counts and flags are not metrics
    of a model, strings cannot be logged as metrics)."""
    return {
        prefix + metric_key(name): float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _param_text(value: object) -> str:
    """A parameter value as MLflow stores it: text, lists and dicts as JSON."""
    return json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)


@contextmanager
def _run(
    client: MlflowClient, experiment_id: str, name: str, parent_id: str | None = None
) -> Iterator[str]:
    """A run that ends FINISHED, or FAILED when the body raises; yields its id."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {MLFLOW_PARENT_RUN_ID: parent_id} if parent_id else {}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def _log(
    client: MlflowClient,
    run_id: str,
    metrics: Mapping[str, float],
    params: Mapping[str, object] | None = None,
) -> None:
    """Log metrics and params of a run in one batch (one round trip, one timestamp)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        params=[Param(key, _param_text(value)) for key, value in (params or {}).items()],
    )


def _parent_params(metrics: Mapping[str, Any]) -> dict[str, object]:
    """What the whole run was: the chosen model, the primary metric and the protocol."""
    protocol = metrics.get("protocol") or {}
    return {
        "chosen": metrics["chosen"],
        "primary_metric": metrics["primary_metric"],
        **{f"protocol.{key}": value for key, value in protocol.items()},
    }


def _child_metrics(metrics: Mapping[str, Any], model: str) -> dict[str, float]:
    """One model's test metrics, its validation metrics as ``val_*`` and its timings."""

    def section(key: str) -> Mapping[str, Any]:
        return (metrics.get(key) or {}).get(model) or {}

    return {
        **_numbers(section("models")),
        **_numbers(section("validation"), prefix="val_"),
        **_numbers(section("timings")),
    }


def _log_report_artifacts(
    client: MlflowClient, run_id: str, metrics: Mapping[str, Any], figures_dir: Path | None
) -> None:
    """metrics.json, report.html and the plots (``figures/``; drawn here unless given)."""
    with tempfile.TemporaryDirectory(prefix="recsys-mlflow-") as scratch:
        root = Path(scratch)
        (root / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        write_report(metrics, root / "report.html")
        if figures_dir is None:
            figures_dir = root / FIGURES_ARTIFACT
            save_figures(metrics, figures_dir)
        client.log_artifact(run_id, str(root / "metrics.json"))
        client.log_artifact(run_id, str(root / "report.html"))
        client.log_artifacts(run_id, str(figures_dir), FIGURES_ARTIFACT)


# -- registry ----------------------------------------------------------------------------------


def _primary_value(metrics: Mapping[str, Any]) -> float:
    """The chosen model's test figure of the primary metric: what champions are ranked by."""
    chosen, primary = metrics["chosen"], metrics["primary_metric"]
    try:
        return float(metrics["models"][chosen][primary])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"metrics have no test {primary!r} for the chosen model {chosen!r}; "
            "nothing to rank the registered version by"
        ) from None


def _baseline_value(metrics: Mapping[str, Any]) -> float | None:
    """The popularity baseline's test figure of the primary metric; None in metrics written
    before the baseline was evaluated on every run."""
    try:
        return float(metrics["models"][BASELINE_MODEL][metrics["primary_metric"]])
    except (KeyError, TypeError, ValueError):
        return None


def _failures(metrics: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The failures of requested models (in tuning, the test fit, the refit, ...). A failed
    tuning trial is not one: the model was still tuned and tested, one set of its parameters
    was not. Metrics without the list come from runs that stopped at the first failure, so a
    run that wrote them had none."""
    return [
        failure
        for failure in metrics.get("failed") or []
        if failure.get("stage") != _TRIAL_FAILURE_STAGE
    ]


def _require_artifact(artifact_dir: Path) -> None:
    """Refuse to register a directory that is not a bundle, before any run is created."""
    if not (artifact_dir / ARTIFACT_MANIFEST).is_file():
        raise ConfigError(
            f"{artifact_dir} is not a model bundle (no {ARTIFACT_MANIFEST}); not logged"
        )


def _require_margin(margin: float) -> None:
    """Refuse a margin that would let a model below popularity through, or that is not a
    number at all."""
    if not math.isfinite(margin) or margin < 0:
        raise ConfigError(
            f"promotion margin must be a non-negative fraction of the baseline's figure, "
            f"such as 0.05 for 5%; got {margin}"
        )


def _fingerprint(metrics: Mapping[str, Any], artifact_dir: Path) -> str | None:
    """The training data's fingerprint: from the protocol, else from the bundle's manifest."""
    protocol = metrics.get("protocol") or {}
    if TAG_FINGERPRINT in protocol:
        return protocol[TAG_FINGERPRINT]
    return json.loads((artifact_dir / ARTIFACT_MANIFEST).read_text()).get(TAG_FINGERPRINT)


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


def _version_tags(metrics: Mapping[str, Any], artifact_dir: Path, margin: float) -> dict[str, str]:
    """Tags the champion decision and a human browsing the registry read."""
    tags = {
        TAG_CHOSEN: str(metrics["chosen"]),
        TAG_PRIMARY_METRIC: str(metrics["primary_metric"]),
        TAG_PRIMARY_VALUE: repr(_primary_value(metrics)),
        TAG_MARGIN: repr(margin),
        TAG_FAILED: str(len({failure.get("model") for failure in _failures(metrics)})),
    }
    baseline = _baseline_value(metrics)
    optional = {
        TAG_FINGERPRINT: _fingerprint(metrics, artifact_dir),
        TAG_TEST_FINGERPRINT: (metrics.get("protocol") or {}).get(TAG_TEST_FINGERPRINT),
        TAG_PROTOCOL_FINGERPRINT: protocol_fingerprint(metrics),
        TAG_BASELINE_VALUE: None if baseline is None else repr(baseline),
    }
    return {**tags, **{key: str(value) for key, value in optional.items() if value is not None}}


def _register_artifact(
    client: MlflowClient, run_id: str, artifact_dir: Path, name: str, tags: Mapping[str, str]
) -> str:
    """Log the bundle into the run and make it a new version of ``name``; returns the version."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client.log_artifacts(run_id, str(artifact_dir), MLFLOW_ARTIFACT_PATH)
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    source = posixpath.join(client.get_run(run_id).info.artifact_uri, MLFLOW_ARTIFACT_PATH)
    created = client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
    return str(created.version)  # an int from some stores, a str from others


# -- promotion ---------------------------------------------------------------------------------


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


def _current_champion(client: MlflowClient, name: str) -> tuple[str, _Standing] | None:
    """(version, standing) of ``name``'s champion, or None when no version holds the alias."""
    version = client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    if version is None:
        return None
    return str(version), _Standing.of(client.get_model_version(name, str(version)).tags)


def _decide(
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
    problems = [_failure_text(failure) for failure in _failures(metrics)]
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
    baseline = _baseline_value(metrics)
    if baseline is None:
        return False, f"the metrics have no popularity baseline figure of {primary}"
    if chosen == BASELINE_MODEL:
        return False, "the chosen model is the popularity baseline itself"
    value, bar = _primary_value(metrics), f"(margin {margin * 100:g}%)"
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


def _record(
    client: MlflowClient, run_id: str, name: str, version: str, promotion: Promotion
) -> None:
    """Write the decision and its reason on the run and on the version."""
    for key, value in ((TAG_DECISION, promotion.decision.value), (TAG_REASON, promotion.reason)):
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(name, version, key, value)


def log_training_run(
    metrics: Mapping[str, Any],
    artifact_dir: Path,
    *,
    experiment: str = "member-recsys",
    tracking_uri: str | None = None,
    registered_model: str = "member-recsys",
    figures_dir: Path | None = None,
    promotion_margin: float = DEFAULT_PROMOTION_MARGIN,
) -> TrackingResult:
    """Log a training run with its per-model child runs, register ``bundle_dir`` as a new
    version of ``registered_model`` and make it champion when it beats the champion on the
    same test, or passes the gate where there is no champion it can be compared with."""
    _require_artifact(artifact_dir)
    _require_margin(promotion_margin)
    tags = _version_tags(metrics, artifact_dir, promotion_margin)  # fails early without a figure
    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    experiment_id = _experiment_id(client, experiment, uri)
    with _run(client, experiment_id, f"train ({metrics['chosen']})") as run_id:
        chosen_metrics = _numbers(metrics["models"][metrics["chosen"]])
        params = {**_parent_params(metrics), TAG_MARGIN: promotion_margin}
        _log(client, run_id, chosen_metrics, params)
        for model, model_params in _models_with_params(metrics).items():
            with _run(client, experiment_id, model, parent_id=run_id) as child_id:
                _log(client, child_id, _child_metrics(metrics, model), model_params)
        _log_report_artifacts(client, run_id, metrics, figures_dir)
        version = _register_artifact(client, run_id, artifact_dir, registered_model, tags)
        champion = _current_champion(client, registered_model)
        promotion = _decide(metrics, tags, champion, promotion_margin)
        _record(client, run_id, registered_model, version, promotion)
    if promotion.decision.promotes:
        client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, version)
        champion_version: str | None = version
    else:
        champion_version = None if champion is None else champion[0]
    return TrackingResult(
        run_id,
        version,
        promotion.decision.promotes,
        champion_version,
        promotion.decision,
        promotion.reason,
    )


def _models_with_params(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every evaluated model with its tuned params (none for a model that was not tuned)."""
    params = metrics.get("params") or {}
    return {model: params.get(model) or {} for model in metrics["models"]}


# -- aliases and downloads ---------------------------------------------------------------------


def promote(
    version: int | str,
    *,
    registered_model: str = "member-recsys",
    alias: str = CHAMPION_ALIAS,
    tracking_uri: str | None = None,
) -> str | None:
    """Point ``alias`` at ``version`` by hand (a rollback, or a version the gate refused);
    returns the promotion reason recorded when the version was registered, so that whoever
    overrides the decision sees what they override (None for versions registered before
    reasons were recorded)."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    try:
        registered = client.get_model_version(registered_model, str(version))
    except MlflowException:
        known = sorted(_version_numbers(client, registered_model), key=int)
        raise ConfigError(
            f"registered model {registered_model!r} at {uri} has no version {version}; "
            f"versions there: {', '.join(known) or 'none'}"
        ) from None
    client.set_registered_model_alias(registered_model, alias, str(version))
    return registered.tags.get(TAG_REASON)


def _version_numbers(client: MlflowClient, name: str) -> list[str]:
    """Every version of registered model ``name`` (none if the model does not exist)."""
    quote = '"' if "'" in name else "'"  # MLflow's filter syntax has no escapes
    return [str(mv.version) for mv in client.search_model_versions(f"name = {quote}{name}{quote}")]


def _registered_version(client: MlflowClient, model_uri: str) -> tuple[str, str]:
    """(name, version) that ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names."""
    match = _MODEL_URI.fullmatch(model_uri)
    if match is None:
        raise ConfigError(
            f"{model_uri!r} is not a registry URI; use models:/<name>@<alias> "
            "or models:/<name>/<version>"
        )
    name, alias, version = match.group("name", "alias", "version")
    if alias is not None:
        version = client.get_model_version_by_alias(name, alias).version
    return name, str(version)


def resolve_model_uri(model_uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(name, version) that ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` names
    now: a server following an alias polls this to see whether it moved, without downloading.
    """
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    try:
        return _registered_version(_client(uri), model_uri)
    except MlflowException as error:
        raise ConfigError(f"cannot resolve {model_uri} at {uri}: {error.message}") from None


def download_artifact(model_uri: str, dst: Path, tracking_uri: str | None = None) -> Path:
    """Download the bundle a registered version holds (``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``) into ``dst``; returns the local bundle directory.

    The version is resolved with our own client and its source downloaded by URI, rather than
    handing the ``models:/`` URI to MLflow: up to at least 3.17 MLflow resolves those against the
    process-wide registry URI and ignores the one passed in (open fix: mlflow/mlflow PR #18313),
    which would read, or even create, ``./mlflow.db`` instead of the store asked for.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    uri = tracking_uri or default_tracking_uri()
    client = _client(uri)
    try:
        name, version = _registered_version(client, model_uri)
        source = client.get_model_version_download_uri(name, version)
        local = download_artifacts(source, dst_path=str(dst), tracking_uri=uri)
    except MlflowException as error:
        raise ConfigError(f"cannot download {model_uri} from {uri}: {error.message}") from None
    if not (Path(local) / ARTIFACT_MANIFEST).is_file():
        raise ConfigError(f"{model_uri} holds no member-recsys bundle (no {ARTIFACT_MANIFEST})")
    return Path(local)
