"""The LightGBM ranker: trained on the examples of every label window, early-stopped on
members held out of training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from training.models.rerank.examples import Examples
from training.models.rerank.params import RerankParams
from training.models.rerank.statistics import FEATURE_NAMES

if TYPE_CHECKING:
    # LightGBM (and the scikit-learn it loads) takes about a second to import: it is imported
    # where a ranker is trained or loaded, not by every process that lists the models.
    import lightgbm as lgb

__all__ = ["train_ranker"]


def _lightgbm_params(params: RerankParams) -> dict[str, Any]:
    """LightGBM's names for the settings; deterministic, so a refit gives the same ranker."""
    return {
        "objective": params.objective,
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": params.learning_rate,
        "num_leaves": params.leaves,
        "min_data_in_leaf": params.min_child_samples,
        "lambda_l2": params.l2_regularization,
        "feature_fraction": params.feature_fraction,
        "seed": params.seed,
        "deterministic": True,
        "num_threads": params.threads,
        "verbosity": -1,
    }


def _dataset(examples: Examples, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    """The examples as a LightGBM data set (``reference``: the training set whose bins a
    validation set shares)."""
    import lightgbm as lgb

    return lgb.Dataset(
        examples.features,
        label=examples.labels,
        group=examples.groups,
        feature_name=list(FEATURE_NAMES),
        reference=reference,
        free_raw_data=False,
    )


def train_ranker(examples: Examples, holdout: np.ndarray, params: RerankParams) -> lgb.Booster:
    """Train on the groups of the kept members, early-stopped on the held-out members' groups
    (a member is held out in every window, so the stopping point is not fit to them)."""
    import lightgbm as lgb

    held_out = holdout[examples.group_members]
    lgb_params = _lightgbm_params(params)
    if held_out.all() or not held_out.any():  # too few groups to split: no early stopping
        return lgb.train(lgb_params, _dataset(examples), num_boost_round=params.trees)
    train = _dataset(examples.subset(~held_out))
    return lgb.train(
        lgb_params,
        train,
        num_boost_round=params.trees,
        valid_sets=[_dataset(examples.subset(held_out), reference=train)],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
