"""LightFM hybrid matrix factorisation: collaborative signal plus item content and member segments.

Why a hybrid: a pure factor model cannot place an item nobody has bought yet, nor a member who
has not shopped. Here an item is the sum of an identity embedding (learnt from its own
interactions) and the embeddings of its content features (category, words, tags, ...), and a
member is the sum of an identity embedding and the embedding of their segment. A new catalog
item is then placed by its content alone, and a new member by their history and segment.

Choices, and why:

* **Feature rows sum to 1, blocks sharing equally.** Each block (identity, content, segment) is
  L1-normalised per row and the blocks present in a row get equal shares, as LightFM's own
  ``Dataset`` normalises. So an item described by many words is not louder than one with a
  single tag, and the content of a new item carries the weight identity and content share.
* **Only interacted items are trained.** Items without interactions (catalog-only, typically
  new) are left out of training: WARP would otherwise sample them as negatives and teach the
  model that new items are disliked. They are scored from their content afterwards; an item
  with neither interactions nor content has no evidence and gets a zero embedding and the
  lowest learnt item bias.
* **Binary targets, compressed weights.** Every non-zero cell is a positive. Its strength is
  passed as ``sample_weight = log1p(value)``, scaled to mean 1: repeat purchases count more,
  a bulk buyer's 200 units do not blow up the gradient, and ``learning_rate`` keeps its usual
  meaning. ``warp-kos`` does not support sample weights in LightFM, so it trains unweighted.
* **Scores from precomputed representations.** ``score = member_emb @ item_emb.T + item_bias``
  (the member bias is constant per row and cannot change a ranking), which is one matrix
  product per batch instead of ``LightFM.predict`` per member, and needs no LightFM at serving.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from pydantic import Field

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender

__all__ = ["LightFMParams", "LightFMRecommender"]


class LightFMParams(ModelParams):
    """Hyperparameters of :class:`LightFMRecommender` (LightFM's names, where it has one).

    ``logistic`` needs negative labels, which implicit data lacks (every cell is a positive),
    so it ranks poorly here; the ranking losses ``warp`` (default), ``bpr`` and ``warp-kos``
    are the ones to use. ``num_threads`` above 1 trains lock-free in parallel (Hogwild), so
    fits are then not bit-for-bit reproducible even with a fixed ``random_state``.
    """

    no_components: int = Field(64, ge=1)
    loss: Literal["warp", "bpr", "logistic", "warp-kos"] = "warp"
    learning_rate: float = Field(0.05, gt=0)
    item_alpha: float = Field(1e-6, ge=0)
    user_alpha: float = Field(1e-6, ge=0)
    epochs: int = Field(20, ge=1)
    max_sampled: int = Field(10, ge=1)
    use_item_features: bool = True
    use_member_features: bool = True
    random_state: int = 42
    num_threads: int = Field(2, ge=1)


@dataclass(frozen=True)
class _Representations:
    """Everything scoring and cold starts need; each field is saved as ``<name>.npy``."""

    #: Items x components and items: the final item representations.
    item_embeddings: np.ndarray
    item_biases: np.ndarray
    #: Members x components: the final member representations.
    member_embeddings: np.ndarray
    #: Mean and median length of the members' identity embeddings: the stand-in identity of a
    #: new member without history, and the length a history-based identity is scaled to.
    identity_mean: np.ndarray
    identity_norm: np.ndarray
    #: Segments x components: embedding of each segment feature (0 rows when unused).
    segment_embeddings: np.ndarray
    #: Content features x components, and their biases: place items added after the fit
    #: (0 rows when content was not used).
    content_embeddings: np.ndarray
    content_biases: np.ndarray

    def save(self, directory: Path) -> None:
        for field in fields(self):
            np.save(directory / f"{field.name}.npy", getattr(self, field.name))

    @classmethod
    def load(cls, directory: Path, mmap: bool) -> _Representations:
        mode = "r" if mmap else None
        return cls(
            **{
                field.name: np.load(
                    directory / f"{field.name}.npy", mmap_mode=mode, allow_pickle=False
                )
                for field in fields(cls)
            }
        )


class LightFMRecommender(Recommender):
    """LightFM with identity + content item features and identity + segment member features."""

    name = "lightfm"
    Params = LightFMParams
    params: LightFMParams
    _arrays: _Representations

    def fit(self, data: TrainingData) -> Self:
        matrix = sp.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        matrix.eliminate_zeros()  # on a copy: explicit zeros are no interactions
        if matrix.nnz == 0:
            raise ModelFitError("lightfm cannot learn from an empty interaction matrix")
        trained_items = np.flatnonzero(matrix.getnnz(axis=0))
        item_blocks = [_identity_rows(data.n_items, trained_items), *self._content_blocks(data)]
        member_blocks = [
            sp.identity(data.n_members, np.float32, "csr"),
            *self._segment_blocks(data),
        ]
        item_features = _balanced_features(item_blocks)
        member_features = _balanced_features(member_blocks)
        lightfm = self._train(
            matrix[:, trained_items], member_features, item_features[trained_items]
        )
        self._arrays = _representations(
            lightfm, member_features, item_features, data.n_members, len(trained_items)
        )
        self.n_items = data.n_items
        return self

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        representations = self._member_representations(members, histories)
        scores = representations @ self._arrays.item_embeddings.T + self._arrays.item_biases
        return np.asarray(scores, np.float32)

    def item_vectors(self) -> np.ndarray:
        """``[embedding, bias]`` per item, so that the inner product with a member vector is
        the score."""
        return _with_bias(self._arrays.item_embeddings, self._arrays.item_biases)

    def member_vectors(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """``[embedding, 1]`` per member: the 1 picks up the item bias of :meth:`item_vectors`."""
        representations = self._member_representations(members, histories)
        return _with_bias(representations, np.ones(len(representations), np.float32))

    def fold_in(self, histories: sp.csr_matrix, segments: np.ndarray | None = None) -> np.ndarray:
        """Representations of members unknown at fit time, from their history and segment.

        The unknown identity embedding is replaced by the history-weighted mean of the history
        items' representations (they point where the member's taste is), scaled to the typical
        length of a learnt identity embedding so that item biases keep their usual weight.
        Without history it is the mean learnt identity: an average member. A known segment
        (a code into the training ``segment_names``; -1 unknown) is then blended in with the
        same equal share as in training, if the model was fit with segment features.
        """
        identity = self._identity_from_histories(histories)
        if segments is None or len(self._arrays.segment_embeddings) == 0:
            return identity
        segments = np.asarray(segments)
        known = segments >= 0
        blended = identity.copy()
        segment_part = self._arrays.segment_embeddings[segments[known]]
        blended[known] = 0.5 * identity[known] + 0.5 * segment_part
        return blended

    def new_item_vectors(self, content: sp.csr_matrix) -> np.ndarray:
        """``[embedding, bias]`` of items added after the fit, from their content rows alone.

        ``content`` must use the training catalog's feature columns (``ItemFeatures.
        feature_names`` of the fit). Rows without any feature get the lowest item bias, like
        evidence-free items at fit time.
        """
        if content.shape[1] != len(self._arrays.content_embeddings):
            raise ValueError(
                f"expected {len(self._arrays.content_embeddings)} content feature columns "
                f"(the fit's), got {content.shape[1]}"
            )
        rows = _l1_rows(sp.csr_matrix(content, dtype=np.float32))
        biases = _lowest_bias_for_featureless(
            rows @ self._arrays.content_biases, rows, floor=self._arrays.item_biases.min()
        )
        return _with_bias(rows @ self._arrays.content_embeddings, biases)

    def _save_arrays(self, directory: Path) -> None:
        self._arrays.save(directory)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        self._arrays = _Representations.load(directory, mmap)

    # -- fitting -------------------------------------------------------------------------------

    def _content_blocks(self, data: TrainingData) -> list[sp.csr_matrix]:
        features = data.item_features
        if not self.params.use_item_features or features is None or features.matrix.shape[1] == 0:
            return []
        return [sp.csr_matrix(features.matrix, dtype=np.float32)]

    def _segment_blocks(self, data: TrainingData) -> list[sp.csr_matrix]:
        codes = data.member_segments
        if not self.params.use_member_features or codes is None or not data.segment_names:
            return []
        members = np.flatnonzero(codes >= 0)
        ones = np.ones(len(members), np.float32)
        shape = (data.n_members, len(data.segment_names))
        return [sp.csr_matrix((ones, (members, codes[members])), shape=shape)]

    def _train(
        self, matrix: sp.csr_matrix, member_features: sp.csr_matrix, item_features: sp.csr_matrix
    ) -> LightFM:
        params = self.params
        lightfm = LightFM(
            no_components=params.no_components,
            loss=params.loss,
            learning_rate=params.learning_rate,
            item_alpha=params.item_alpha,
            user_alpha=params.user_alpha,
            max_sampled=params.max_sampled,
            random_state=params.random_state,
        )
        interactions, sample_weight = _targets(matrix, weighted=params.loss != "warp-kos")
        try:
            return lightfm.fit(
                interactions,
                user_features=member_features,
                item_features=item_features,
                sample_weight=sample_weight,
                epochs=params.epochs,
                num_threads=params.num_threads,
            )
        except ValueError as error:  # LightFM's signal that the parameters went non-finite
            raise ModelFitError(
                f"lightfm diverged ({error}); lower learning_rate (now {params.learning_rate})"
            ) from error

    # -- scoring -------------------------------------------------------------------------------

    def _member_representations(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Learnt representations of known members, folded-in ones for index -1."""
        members = np.asarray(members, np.int64)
        unknown = members < 0
        representations = np.empty(
            (len(members), self._arrays.member_embeddings.shape[1]), np.float32
        )
        representations[~unknown] = self._arrays.member_embeddings[members[~unknown]]
        if unknown.any():
            representations[unknown] = self.fold_in(sp.csr_matrix(histories)[unknown])
        return representations

    def _identity_from_histories(self, histories: sp.csr_matrix) -> np.ndarray:
        """Stand-in identity embeddings; see :meth:`fold_in`."""
        sums = np.asarray(histories @ self._arrays.item_embeddings, np.float32)
        lengths = np.linalg.norm(sums, axis=1, keepdims=True)
        scale = np.divide(
            self._arrays.identity_norm, lengths, out=np.zeros_like(lengths), where=lengths > 0
        )
        identity = sums * scale
        identity[lengths[:, 0] == 0] = self._arrays.identity_mean
        return identity


def _identity_rows(n_rows: int, trained: np.ndarray) -> sp.csr_matrix:
    """One identity column per trained item; the other rows stay empty (content only)."""
    ones = np.ones(len(trained), np.float32)
    return sp.csr_matrix((ones, (trained, np.arange(len(trained)))), shape=(n_rows, len(trained)))


def _l1_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Scale every non-empty row to sum of absolute values 1; empty rows stay empty."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()  # on a copy, so that stored zeros do not count as features
    sums = np.asarray(abs(matrix).sum(axis=1), np.float32).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32)


def _balanced_features(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """Join feature blocks so that each row sums to 1, its non-empty blocks sharing equally."""
    unit_blocks = [_l1_rows(block) for block in blocks]
    present = sum((block.getnnz(axis=1) > 0).astype(np.float32) for block in unit_blocks)
    share = np.divide(1.0, present, out=np.zeros_like(present), where=present > 0)
    joined = sp.hstack(unit_blocks, format="csr", dtype=np.float32)
    return sp.csr_matrix(sp.diags(share) @ joined, dtype=np.float32)


def _targets(matrix: sp.csr_matrix, weighted: bool) -> tuple[sp.coo_matrix, sp.coo_matrix | None]:
    """Binary interactions and, if ``weighted``, mean-1 ``log1p`` sample weights in the same
    COO order (LightFM checks that the two line up entry by entry)."""
    binary = sp.coo_matrix(matrix, dtype=np.float32)
    strength = np.log1p(binary.data)
    binary.data = np.ones_like(binary.data)
    if not weighted:
        return binary, None
    weights = sp.coo_matrix((strength / strength.mean(), (binary.row, binary.col)), binary.shape)
    return binary, weights.astype(np.float32)


def _representations(
    lightfm: LightFM,
    member_features: sp.csr_matrix,
    item_features: sp.csr_matrix,
    n_members: int,
    n_trained_items: int,
) -> _Representations:
    """Turn a fitted LightFM into the arrays scoring and cold starts need."""
    item_biases, item_embeddings = lightfm.get_item_representations(item_features)
    _, member_embeddings = lightfm.get_user_representations(member_features)
    identity = lightfm.user_embeddings[:n_members]
    trained_biases = lightfm.item_biases[:n_trained_items]
    return _Representations(
        item_embeddings=np.asarray(item_embeddings, np.float32),
        item_biases=_lowest_bias_for_featureless(
            np.asarray(item_biases, np.float32), item_features, floor=trained_biases.min()
        ),
        member_embeddings=np.asarray(member_embeddings, np.float32),
        identity_mean=identity.mean(axis=0).astype(np.float32),
        identity_norm=np.float32(np.median(np.linalg.norm(identity, axis=1))),
        segment_embeddings=lightfm.user_embeddings[n_members:].astype(np.float32),
        content_embeddings=lightfm.item_embeddings[n_trained_items:].astype(np.float32),
        content_biases=lightfm.item_biases[n_trained_items:].astype(np.float32),
    )


def _lowest_bias_for_featureless(
    biases: np.ndarray, features: sp.csr_matrix, floor: float
) -> np.ndarray:
    """Items with no feature at all carry no evidence: rank them like the least liked item
    rather than at a neutral 0, which could sit above every learnt (negative) bias."""
    featureless = features.getnnz(axis=1) == 0
    return np.where(featureless, np.float32(floor), biases).astype(np.float32)


def _with_bias(embeddings: np.ndarray, last_column: np.ndarray) -> np.ndarray:
    """Append one column, so that an inner product of two such vectors adds the bias."""
    return np.hstack([embeddings, last_column[:, None]]).astype(np.float32)
