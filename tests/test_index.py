"""ItemIndex: exact below the threshold, HNSW recall on factor-like data, exclusions, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.index import IndexConfig, ItemIndex, measure_recall
from training.models.base import top_n

SMALL = IndexConfig(exact_below=0, hnsw_m=8, ef_construction=40, ef_search=32, ivf_nlist=4)


def low_rank_vectors(n_rows: int, dim: int, rank: int, seed: int) -> np.ndarray:
    """Rows like a factor model's: a few latent tastes mixed, plus a little noise."""
    rng = np.random.default_rng(seed)
    mixed = rng.normal(size=(n_rows, rank)) @ rng.normal(size=(rank, dim))
    return (mixed + 0.1 * rng.normal(size=(n_rows, dim))).astype(np.float32)


def reference_top(
    vectors: np.ndarray, queries: np.ndarray, k: int, exclude: list[set[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    for row, items in enumerate(exclude or []):
        scores[row, list(items)] = -np.inf
    return top_n(scores, k)


def test_hnsw_recall_at_10_is_at_least_095_on_low_rank_data() -> None:
    items = low_rank_vectors(20_000, 64, rank=16, seed=0)
    queries = low_rank_vectors(500, 64, rank=16, seed=1)
    assert measure_recall(items, queries, IndexConfig(), k=10) >= 0.95


def test_catalog_below_exact_below_is_searched_exactly() -> None:
    items = low_rank_vectors(1_000, 16, rank=4, seed=2)
    queries = low_rank_vectors(20, 16, rank=4, seed=3)
    index = ItemIndex.build(items, IndexConfig(exact_below=1_001))
    ids, scores = index.search(queries, 10)
    expected_ids, expected_scores = reference_top(items, queries, 10)
    assert index.kind == "exact"
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_catalog_at_exact_below_uses_the_configured_kind(kind: str) -> None:
    items = low_rank_vectors(500, 8, rank=4, seed=4)
    config = SMALL.model_copy(update={"exact_below": 500, "kind": kind})
    assert ItemIndex.build(items, config).kind == kind


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(0, 12), n_items=st.integers(1, 40))
def test_excluded_items_never_appear_and_k_remain_when_possible(
    seed: int, k: int, n_items: int
) -> None:
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(n_items, 6)).astype(np.float32)
    queries = rng.normal(size=(5, 6)).astype(np.float32)
    exclude = [set(rng.choice(n_items, size=rng.integers(0, n_items + 1), replace=False).tolist())]
    exclude += [set() for _ in range(4)]
    ids, scores = ItemIndex.build(items).search(queries, k, exclude=exclude)
    expected_ids, expected_scores = reference_top(items, queries, k, exclude)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-5)


def test_exclusions_outside_the_catalog_are_ignored() -> None:
    items = np.eye(4, dtype=np.float32)
    queries = np.eye(4, dtype=np.float32)[:2]
    ids, _ = ItemIndex.build(items).search(queries, 1, exclude=[{4, 5, -1}, set()])
    np.testing.assert_array_equal(ids, [[0], [1]])


def test_rows_are_padded_when_the_catalog_is_smaller_than_k() -> None:
    ids, scores = ItemIndex.build(np.eye(3, dtype=np.float32)).search(np.ones((2, 3)), 5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(ids[:, 3:], -1)
    assert np.isneginf(scores[:, 3:]).all()


def test_cosine_scores_ignore_vector_length_and_survive_zero_vectors() -> None:
    items = np.array([[10.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    ids, scores = ItemIndex.build(items, metric="cosine").search(np.array([[0.5, 0.5]]), 3)
    np.testing.assert_array_equal(ids, [[1, 0, 2]])
    np.testing.assert_allclose(scores, [[1.0, np.sqrt(0.5), 0.0]], atol=1e-6)


def test_queries_of_the_wrong_dimension_are_refused() -> None:
    index = ItemIndex.build(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="2 dimensions, the index 3"):
        index.search(np.ones((1, 2)), 1)


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
@pytest.mark.parametrize("mmap", [True, False])
def test_saved_index_answers_like_the_original(kind: str, mmap: bool, tmp_path: Path) -> None:
    items = low_rank_vectors(800, 8, rank=4, seed=5)
    queries = low_rank_vectors(10, 8, rank=4, seed=6)
    config = (
        IndexConfig(exact_below=10_000)
        if kind == "exact"
        else SMALL.model_copy(update={"kind": kind})
    )
    index = ItemIndex.build(items, config, metric="cosine")
    index.save(tmp_path / "index")
    loaded = ItemIndex.load(tmp_path / "index", mmap=mmap)
    assert (loaded.kind, loaded.metric, loaded.n_items, loaded.dim) == (kind, "cosine", 800, 8)
    for got, expected in zip(loaded.search(queries, 5), index.search(queries, 5), strict=True):
        np.testing.assert_array_equal(got, expected)
