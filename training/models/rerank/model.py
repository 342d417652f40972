"""The reranker as a :class:`~training.models.base.Recommender`: fit, score, save and load.

Scoring: candidates get the ranker's score, shifted per member to lie above every other item;
the other items get a score in [-2, -1) ordered by the base model that was best on validation,
so a list always fills up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from training.dataset import TrainingData
from training.metrics import calc_metrics
from training.models.base import ModelFitError, ModelParams, Recommender, top_n
from training.models.rerank.examples import concatenated, window_examples
from training.models.rerank.first_stage import Candidates, FirstStage
from training.models.rerank.params import RerankParams
from training.models.rerank.ranker import train_ranker
from training.models.rerank.statistics import BASE_MODELS, binary
from training.models.rerank.windows import Window, label_windows

if TYPE_CHECKING:
    import lightgbm as lgb  # imported where a ranker is loaded: see training.models.rerank.ranker

__all__ = ["RerankRecommender"]

#: Non-candidates score in [-2, -1); candidates at least 0 (see ``_dense_scores``).
_NON_CANDIDATE_TOP: Final = -1.0
#: Within candidates, a tie-breaking nudge by the ordering model's rank (far below the
#: ranker's own resolution), so items the ranker cannot tell apart keep a meaningful order.
_TIE_NUDGE: Final = 1e-4


class RerankRecommender(Recommender):
    """Base-model candidates reranked by LightGBM; see :mod:`training.models.rerank`."""

    name = "rerank"
    Params = RerankParams
    params: RerankParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.stage = FirstStage(self.params)
        self.ranker: lgb.Booster | None = None
        #: Validation NDCG@10 and precision@10 of the ranker and of each base model on the
        #: held-out members of the latest label window (members never trained on, though they
        #: chose the early-stopping round, so the ranker's figure is slightly optimistic).
        self.validation_report: dict[str, dict[str, float]] = {}

    def fit(self, data: TrainingData) -> Self:
        """Learn the ranker on label windows carved from ``data``, then refit the first stage
        on all of ``data`` for serving."""
        with threadpool_limits(self.params.threads or None, "blas"):
            self._fit_ranker(data)
            self.stage = FirstStage(self.params).fit(data)
        self.stage.order_model = self._best_base_model()
        self.n_items = data.n_items
        return self

    def _fit_ranker(self, data: TrainingData) -> None:
        """Examples of every label window, the ranker, and its validation report."""
        windows = label_windows(data, self.params)
        holdout = np.random.default_rng(self.params.seed).random(data.n_members)
        holdout = holdout < self.params.holdout_share
        latest_stage = FirstStage(self.params).fit(windows[0].data)
        parts = [window_examples(latest_stage, windows[0])]
        for window in windows[1:]:
            parts.append(window_examples(FirstStage(self.params).fit(window.data), window))
        self.ranker = train_ranker(concatenated(parts), holdout, self.params)
        self.validation_report = self._validation_report(latest_stage, windows[0], holdout)

    def _validation_report(
        self, stage: FirstStage, window: Window, holdout: np.ndarray
    ) -> dict[str, dict[str, float]]:
        """NDCG@10 and precision@10 on the window's held-out members (all when none is held
        out): the ranker's lists against each base model's, under the evaluation protocol."""
        rows = np.flatnonzero(holdout[window.members])
        rows = rows if len(rows) else np.arange(len(window.members))
        members, exclude = window.members[rows], window.exclude[rows]
        histories = binary(window.data.matrix[members])
        lists = {
            name: model.recommend(members, histories, n=10, exclude=exclude)[0]
            for name, model in stage.models.items()
        }
        candidates = stage.candidates(members, window.data.matrix[members])
        dense = _dense_scores(candidates, self._predict(candidates), len(members))
        dense[exclude.nonzero()] = -np.inf
        lists[self.name] = top_n(dense, 10)[0]
        relevant = window.relevant[rows]
        report = {}
        for name, recommended in lists.items():
            metrics = calc_metrics(recommended, relevant, ks=(10,))
            report[name] = {key: metrics[key] for key in ("ndcg@10", "precision@10")}
        return report

    def _best_base_model(self) -> str:
        return max(BASE_MODELS, key=lambda name: self.validation_report[name]["ndcg@10"])

    def _predict(self, candidates: Candidates) -> np.ndarray:
        if self.ranker is None:
            raise ModelFitError("rerank must be fit (or loaded) before it can score")
        scores = self.ranker.predict(candidates.features, num_threads=self.params.threads)
        return np.asarray(scores, dtype=np.float32)

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Ranker scores for the candidates above every other item; see the module docstring."""
        members = np.asarray(members, dtype=np.int64)
        candidates = self.stage.candidates(members, sp.csr_matrix(histories))
        return _dense_scores(candidates, self._predict(candidates), len(members))

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """EASE's item-item relation: "members who have this also get"."""
        return self.stage.models["ease"].similar_items(items, n)

    def _save_arrays(self, directory: Path) -> None:
        if self.ranker is None:
            raise ModelFitError("rerank must be fit before it can be saved")
        self.stage.save(directory)
        self.ranker.save_model(str(directory / "ranker.txt"))
        state = {"order_model": self.stage.order_model, "validation": self.validation_report}
        (directory / "rerank.json").write_text(json.dumps(state, indent=2))

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        import lightgbm as lgb

        self.stage = FirstStage(self.params).load(directory, mmap)
        self.ranker = lgb.Booster(model_file=str(directory / "ranker.txt"))
        state = json.loads((directory / "rerank.json").read_text())
        self.stage.order_model = state["order_model"]
        self.validation_report = state["validation"]


def _dense_scores(candidates: Candidates, ranker_scores: np.ndarray, n_members: int) -> np.ndarray:
    """Candidates above 0 by ranker score (ties by the ordering model), the rest in [-2, -1)."""
    n_items = candidates.order_ranks.shape[1]
    order_position = candidates.order_ranks / np.float32(max(n_items, 1))
    dense = (_NON_CANDIDATE_TOP - order_position).astype(np.float32)
    row_floor = np.full(n_members, np.inf)
    np.minimum.at(row_floor, candidates.rows, ranker_scores)
    shifted = ranker_scores - row_floor[candidates.rows]
    nudge = _TIE_NUDGE * (1.0 - order_position[candidates.rows, candidates.items])
    dense[candidates.rows, candidates.items] = shifted + nudge
    return dense
