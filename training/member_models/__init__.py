"""Member models: churn risk, expected purchases and spend, and how they are chosen and scored.

The entry point is :func:`score_members` (``recsys members score`` and ``recsys train`` call
it). Where each part lives:

* ``windows``: which dates the models learn from, are checked on, and score at;
* ``snapshots``: the members as of one date (features, BTYD predictions, outcomes);
* ``btyd``: BG/NBD and Gamma-Gamma by maximum likelihood (their inputs x, t_x, T and m are
  the ``btyd_*`` columns of :func:`features.member_features.member_features`);
* ``churn`` and ``value``: the models side by side; ``learners``: how the learners are fed;
* ``metrics``: ROC and PR AUC with bootstrap intervals, Brier, reliability, lift; MAE, RMSE;
* ``evaluation`` and ``selection``: validation, test, and the choice (and "informative");
* ``profiles``: the RFM figures and segment that go with the scores; ``score``: the run.
"""

from training.member_models.config import LightGBMParams, MemberModelConfig
from training.member_models.score import (
    BAND_HIGH,
    BAND_LOW,
    BAND_MEDIUM,
    BAND_UNINFORMATIVE,
    CHURN_BAND,
    CHURN_RISK,
    EXPECTED_PURCHASES,
    EXPECTED_SPEND,
    HIGH_FROM,
    LOW_BELOW,
    SCORE_COLUMNS,
    MemberScores,
    score_members,
)

__all__ = [
    "BAND_HIGH",
    "BAND_LOW",
    "BAND_MEDIUM",
    "BAND_UNINFORMATIVE",
    "CHURN_BAND",
    "CHURN_RISK",
    "EXPECTED_PURCHASES",
    "EXPECTED_SPEND",
    "HIGH_FROM",
    "LOW_BELOW",
    "SCORE_COLUMNS",
    "LightGBMParams",
    "MemberModelConfig",
    "MemberScores",
    "score_members",
]
