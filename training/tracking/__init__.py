"""MLflow tracking and registry for training runs: log, register, pick the champion, download.

A training run is logged as one parent run with a child run per model, and its model artifact
becomes a new registered version (:mod:`~training.tracking.runs`); the version's tags
(:mod:`~training.tracking.tags`) decide whether the ``champion`` alias moves to it
(:mod:`~training.tracking.promotion`); serving and ``recsys promote`` resolve, download and
move aliases (:mod:`~training.tracking.registry`); :mod:`~training.tracking.store` says where
the store is and what things are called in it. The rules, with examples: docs/promotion.md.
"""

from training.config import DEFAULT_PROMOTION_MARGIN
from training.tracking.promotion import Promotion, PromotionDecision
from training.tracking.registry import download_artifact, promote, resolve_model_uri
from training.tracking.runs import TrackingResult, log_training_run, metric_key
from training.tracking.store import CHAMPION_ALIAS, default_tracking_uri
from training.tracking.tags import PROTOCOL_FIELDS, protocol_fingerprint

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
