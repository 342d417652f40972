"""EASE's solve: the float32 Cholesky inverse against float64, and the refusal, with the numbers,
of a catalogue whose dense solve would not fit in the memory available (the issue: a 20,000-item
fit died in scipy's 32-bit-index OpenBLAS with a segmentation fault and no message)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from tests.model_contract import two_group_interactions
from training.dataset import build_training_data
from training.models.base import ModelFitError
from training.models.ease import (
    USABLE_MEMORY_SHARE,
    EASEParams,
    EASERecommender,
    check_fits_in_memory,
    closed_form_weights,
    dense_gram,
    find_lapack64,
    invert_spd_in_place,
    solve_memory,
)

#: More items than one block of the upper-to-lower mirror (1,024 rows), so that blocks meet.
N_ITEMS = 1_300


@pytest.fixture(scope="module")
def histories() -> sp.csr_matrix:
    """Binary histories with popular and rare items, like a shop's."""
    rng = np.random.default_rng(7)
    popularity = rng.zipf(1.5, N_ITEMS).astype(np.float64)
    probabilities = np.minimum(0.02 * popularity / popularity.mean(), 0.9)
    cells = rng.random((3_000, N_ITEMS)) < probabilities
    return sp.csr_matrix(cells, dtype=np.float32)


def float64_weights(histories: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE's B solved the textbook way, in float64."""
    binary = histories.toarray().astype(np.float64)
    precision = np.linalg.inv(binary.T @ binary + l2 * np.eye(binary.shape[1]))
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights


def test_dense_gram_counts_co_occurrences_exactly_across_blocks(
    histories: sp.csr_matrix,
) -> None:
    by_block = dense_gram(histories, block_bytes=12 * N_ITEMS * 100)  # 100 rows a block
    whole = (histories.T @ histories).toarray()
    assert by_block.dtype == np.float32 and by_block.flags.c_contiguous
    np.testing.assert_array_equal(by_block, whole)


@pytest.mark.parametrize("l2", [10.0, 500.0])  # the ends of tuning's range and the default
def test_float32_cholesky_weights_agree_with_a_float64_inverse(
    histories: sp.csr_matrix, l2: float
) -> None:
    lapack = find_lapack64()
    assert lapack is not None, "numpy's wheel ships a 64-bit-index OpenBLAS; it was not found"
    weights = closed_form_weights(dense_gram(histories), l2, lapack)
    expected = float64_weights(histories, l2)
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(np.diag(weights), 0.0)


def test_numpy_inverse_stands_in_without_a_64_bit_lapack(histories: sp.csr_matrix) -> None:
    gram = dense_gram(histories)
    gram[np.diag_indices_from(gram)] += 500.0
    by_numpy, by_lapack = gram.copy(), gram
    invert_spd_in_place(by_numpy, None)
    invert_spd_in_place(by_lapack, find_lapack64())
    scale = np.abs(by_numpy).max()
    np.testing.assert_allclose(by_lapack, by_numpy, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(by_lapack, by_lapack.T)


def test_a_gram_matrix_singular_in_float32_is_a_fit_error_naming_l2() -> None:
    four_members_hold_all_three = np.full((3, 3), 4.0, dtype=np.float32)
    with pytest.raises(ModelFitError, match=r"l2=1e-30.*raise l2"):
        closed_form_weights(four_members_hold_all_three, 1e-30, find_lapack64())


def test_refuses_when_the_estimate_exceeds_the_usable_share_of_available_memory() -> None:
    needed = solve_memory(20_000, find_lapack64())
    just_enough = int(np.ceil(needed.peak_bytes / USABLE_MEMORY_SHARE))
    check_fits_in_memory(needed, available_bytes=just_enough)
    with pytest.raises(ModelFitError) as refusal:
        check_fits_in_memory(needed, available_bytes=just_enough - 1_000)
    message = str(refusal.value)
    assert "20,000 items" in message
    assert f"{needed.peak_bytes / 2**30:.1f} GiB" in message
    assert "item_knn" in message and "als" in message
    assert "restrict it to about 19,999 items" in message


def test_fit_refuses_a_catalogue_beyond_this_machines_memory_before_allocating_it() -> None:
    catalogue = pl.DataFrame({col.ITEM_ID: [f"c{item}" for item in range(1_000_000)]})
    data = build_training_data(two_group_interactions(), items=catalogue)
    with pytest.raises(ModelFitError, match=r"refuses to fit 1,000,030 items.*GiB available"):
        EASERecommender().fit(data)


def test_params_of_artifacts_from_before_the_estimate_still_load() -> None:
    params = EASEParams.model_validate({"l2": 20.0, "max_items": 20_000, "binary": True})
    assert params.model_dump() == {"l2": 20.0, "binary": True}
    with pytest.raises(ValueError, match="extra"):
        EASEParams.model_validate({"l2": 20.0, "max_item": 20_000})
