"""ALS fit by Spark MLlib (``pyspark.ml.recommendation.ALS``, implicit preferences), served as the
project's own :class:`~training.models.als.ALSRecommender`.

The project's parameters map one to one: ``factors`` -> ``rank``, ``regularization`` ->
``regParam``, ``alpha``, ``iterations`` -> ``maxIter``, ``random_state`` -> ``seed``; the
ratings are the fit's weighted cells. The two libraries do not fit quite the same objective:
MLlib's confidence is ``1 + alpha x weight`` where ``implicit``'s is ``alpha x weight``, and
MLlib scales the regularisation by each member's (item's) number of cells. The factors are
collected to the driver in id-map order; the model scores, folds in new histories (the project's
solve, against MLlib's item factors) and saves exactly as one fit by ``implicit`` does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame

from training.models.als import ALSParams, ALSRecommender
from training.models.base import ModelFitError
from training.spark.cells import ITEM, MEMBER, WEIGHT

__all__ = ["fit_als"]


def fit_als(cells: DataFrame, matrix: sp.csr_matrix, params: ALSParams) -> ALSRecommender:
    """MLlib's ALS on ``cells``; ``matrix``: the same cells on the driver (the model's training
    histories)."""
    if params.bm25_weighting:
        raise ModelFitError(
            "bm25_weighting is not available with the spark engine (MLlib fits the weights as "
            "they are); leave it off, or train with --engine implicit"
        )
    if matrix.nnz == 0:
        raise ModelFitError("ALS cannot fit an interaction matrix without any interaction")
    blocks = max(1, cells.sparkSession.sparkContext.defaultParallelism)
    fitted = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=params.regularization,
        alpha=params.alpha,
        implicitPrefs=True,
        seed=params.random_state,
        userCol=MEMBER,
        itemCol=ITEM,
        ratingCol=WEIGHT,
        # Blocks as many as the cores that solve them: MLlib's 10 leave most cores idle on a
        # cluster and cost a small machine most of its time in task overhead.
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    ).fit(cells)
    n_members, n_items = matrix.shape
    return ALSRecommender.from_factors(
        _factors(fitted.userFactors, n_members, params.factors),
        _factors(fitted.itemFactors, n_items, params.factors),
        matrix,
        params,
    )


def _factors(frame: DataFrame, rows: int, rank: int) -> np.ndarray:
    """MLlib's factors (``id``, ``features``) as a ``rows x rank`` float32 array by index; an
    index without cells (a catalog item never interacted with) keeps zeros, as in ``implicit``."""
    table = frame.toArrow()
    factors = np.zeros((rows, rank), dtype=np.float32)
    features = table.column("features").combine_chunks().flatten().to_numpy()
    factors[table.column("id").to_numpy()] = features.reshape(-1, rank)
    return factors
