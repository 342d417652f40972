"""EASE (Steck 2019): a dense item-item linear model with a closed-form solution.

EASE is often the strongest model on small and mid-sized catalogues and needs no iterations or
seeds, but its weight matrix is dense, items x items: memory grows with the square of the
catalogue and the solve with its cube.

The solve inverts the float32 Gram matrix XᵀX + λI in place by Cholesky (LAPACK ``spotrf``
then ``spotri``) on one thread, through the 64-bit-index OpenBLAS that numpy's wheels ship; the
inverse then becomes the weights in the same buffer. Why each choice (measured by
``benchmarks/ease_solve.py``, docs/benchmarks.md "EASE solve"):

- one thread: OpenBLAS's threaded level-3 paths crash the process (a segmentation fault, no
  message) on large matrices with 2 threads: ``scipy.linalg.inv`` (scipy's own OpenBLAS) and
  ``dpotrf`` of numpy's OpenBLAS both did at 20,000 items in float64, in a worker thread's
  ``dgemm_*copy``; both completed on one thread. On 2 cores one thread costs little
  (float32, 20,000 items: 93 s on two threads, about as long on one).
- 64-bit indices: ``n`` and ``lda`` are 64-bit integers, so no size overflows the interface;
  numpy's OpenBLAS is loaded anyway, and is found through threadpoolctl.
- Cholesky: the matrix is symmetric positive definite, and potrf + potri do about n³ flops
  where an LU inverse does 8/3 n³.
- float32: half the memory and time of float64, with B within about 1e-6 of a float64 solve
  and the same top-10 lists; the weights are stored in float32 anyway.

So a fit's only quadratic allocation is one float32 n x n matrix, and :func:`check_fits_in_memory`
refuses, with the numbers, a catalogue whose estimate exceeds the memory available, before
anything quadratic is allocated. Where no 64-bit-index LAPACK is loaded (a numpy built against
another BLAS), ``numpy.linalg.inv`` does the inversion, at nine times the memory.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import psutil
import scipy.sparse as sp
from pydantic import Field, model_validator
from threadpoolctl import threadpool_info, threadpool_limits

from training.dataset import TrainingData
from training.models.base import ModelFitError, ModelParams, Recommender, top_n

__all__ = [
    "EASEParams",
    "EASERecommender",
    "Lapack64",
    "SolveMemory",
    "available_memory_bytes",
    "check_fits_in_memory",
    "closed_form_weights",
    "dense_gram",
    "find_lapack64",
    "invert_spd_in_place",
    "largest_catalogue",
    "solve_memory",
]

#: Share of the available memory a fit may plan to use: the estimate leaves out the histories'
#: copies and Python's own allocations, and other processes may grow while the solve runs.
USABLE_MEMORY_SHARE = 0.8

#: Working memory of one block of Gram rows (sparse product and its dense copy), at most.
_GRAM_BLOCK_BYTES = 1 << 28

#: Sparse product bytes per cell of a block of Gram rows: float32 value and int32 column index
#: (a cell is stored when two items share a member), plus the float32 dense copy of the block.
_GRAM_BLOCK_BYTES_PER_CELL = 12

#: Rows mirrored from the upper to the lower triangle at once (a square block of float32).
_MIRROR_BLOCK = 1024


class EASEParams(ModelParams):
    """``l2`` is the ridge penalty λ (larger: smoother, more popularity-like); ``binary`` fits
    on "interacted or not" instead of event weights, which is usually more robust."""

    l2: float = Field(default=500.0, gt=0)
    binary: bool = True

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_max_items(cls, values: Any) -> Any:
        """Artifacts trained before the memory estimate record ``max_items``, a fixed catalogue
        cap that the estimate replaced; they must still load."""
        if isinstance(values, dict):
            return {name: value for name, value in values.items() if name != "max_items"}
        return values


class EASERecommender(Recommender):
    """Scores ``histories @ B`` with B the closed-form EASE weights (zero diagonal)."""

    name = "ease"
    Params = EASEParams
    params: EASEParams

    def __init__(self, params: ModelParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        #: B, items x items float32: row i holds how much holding item i raises each item.
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def fit(self, data: TrainingData) -> Self:
        """B = -P / diag(P) with P = (XᵀX + λI)⁻¹; refused first if it cannot fit in memory."""
        lapack = find_lapack64()
        check_fits_in_memory(solve_memory(data.n_items, lapack), available_memory_bytes())
        gram = dense_gram(self._prepared(data.matrix))
        self.weights = closed_form_weights(gram, self.params.l2, lapack)
        self.n_items = data.n_items
        return self

    def _prepared(self, histories: sp.csr_matrix) -> sp.csr_matrix:
        """The histories as the model sees them: binarised when ``binary``, else as weighted."""
        if not self.params.binary:
            return histories
        return sp.csr_matrix(histories != 0, dtype=np.float32)

    def score(self, members: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """Dense ``histories @ B``; member indices are not needed, only histories."""
        return np.asarray(self._prepared(histories) @ self.weights, dtype=np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank by B's rows: row i is exactly the score a member holding only item i would get.

        This is "members who have this also get", the relation a product page wants.
        """
        items = np.asarray(items, dtype=np.int64)
        scores = np.array(self.weights[items], dtype=np.float32)
        scores[np.arange(len(items)), items] = -np.inf
        return top_n(scores, n)

    def _save_arrays(self, directory: Path) -> None:
        np.save(directory / "weights.npy", self.weights, allow_pickle=False)

    def _load_arrays(self, directory: Path, mmap: bool) -> None:
        self.weights = np.load(
            directory / "weights.npy", mmap_mode="r" if mmap else None, allow_pickle=False
        )


# -- memory -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolveMemory:
    """What a fit of ``n_items`` needs at its peak, and where that figure comes from."""

    n_items: int
    bytes_per_cell: int
    block_bytes: int

    @property
    def peak_bytes(self) -> int:
        return self.n_items**2 * self.bytes_per_cell + self.block_bytes

    def formula(self) -> str:
        return (
            f"{self.n_items:,}² x {self.bytes_per_cell} bytes + {self.block_bytes / 2**20:.0f} MiB"
        )


def solve_memory(n_items: int, lapack: Lapack64 | None) -> SolveMemory:
    """The peak of a fit beyond the histories it is given.

    With a 64-bit-index LAPACK: the float32 Gram matrix alone (inverted and scaled in place),
    4 bytes per cell. With ``numpy.linalg.inv``, which computes a float32 inverse in float64:
    the Gram matrix, its float64 cast, numpy's copy of that, the identity it solves against
    and the float64 inverse, 36 bytes per cell (the benchmark measured 32 above the Gram
    matrix at 12,000 items). Plus, while the Gram matrix is built, one block of its rows.
    """
    bytes_per_cell = 4 if lapack is not None else 36
    return SolveMemory(n_items, bytes_per_cell, _GRAM_BLOCK_BYTES)


def available_memory_bytes() -> int:
    """Memory the kernel can hand out now without swapping (``MemAvailable`` on Linux)."""
    return int(psutil.virtual_memory().available)


def check_fits_in_memory(needed: SolveMemory, available_bytes: int) -> None:
    """Refuse, with the numbers and the way out, a fit whose estimated peak exceeds
    :data:`USABLE_MEMORY_SHARE` of ``available_bytes``; before anything quadratic exists, so
    that a catalogue too large fails in a second with a message instead of the machine
    swapping or the kernel killing the run."""
    n_items = needed.n_items
    usable = int(available_bytes * USABLE_MEMORY_SHARE)
    if needed.peak_bytes <= usable:
        return
    largest = largest_catalogue(needed, usable)
    raise ModelFitError(
        f"EASE refuses to fit {n_items:,} items: its dense item x item solve needs about "
        f"{needed.peak_bytes / 2**30:.1f} GiB ({needed.formula()}), more than the "
        f"{usable / 2**30:.1f} GiB it may use ({USABLE_MEMORY_SHARE:.0%} of the "
        f"{available_bytes / 2**30:.1f} GiB available now). Use item_knn or als for a "
        f"catalogue this large, or restrict it to about {largest:,} items, or train on a "
        "machine with more free memory."
    )


def largest_catalogue(memory: SolveMemory, usable_bytes: int) -> int:
    """The most items whose estimated peak fits in ``usable_bytes``."""
    room = max(usable_bytes - memory.block_bytes, 0)
    return int(np.sqrt(room / memory.bytes_per_cell))


# -- the solve ----------------------------------------------------------------------------------


def dense_gram(histories: sp.csr_matrix, block_bytes: int = _GRAM_BLOCK_BYTES) -> np.ndarray:
    """Dense float32 XᵀX (item co-occurrence), C-ordered, built a block of item rows at a
    time so that the sparse product never holds more than about ``block_bytes`` (a whole
    sparse XᵀX can take three times the dense matrix's memory when most item pairs
    co-occur)."""
    n_items = histories.shape[1]
    by_item = sp.csr_matrix(histories.T, dtype=np.float32)
    members = sp.csr_matrix(histories, dtype=np.float32)
    gram = np.zeros((n_items, n_items), dtype=np.float32)
    rows = max(1, block_bytes // (_GRAM_BLOCK_BYTES_PER_CELL * max(n_items, 1)))
    for start in range(0, n_items, rows):
        stop = min(start + rows, n_items)
        gram[start:stop] = (by_item[start:stop] @ members).toarray()
    return gram


def closed_form_weights(gram: np.ndarray, l2: float, lapack: Lapack64 | None) -> np.ndarray:
    """EASE's B from the float32 C-ordered Gram matrix XᵀX, computed in its buffer (which is
    returned): P = (XᵀX + λI)⁻¹, then column j divided by -P_jj and a zero diagonal."""
    if gram.dtype != np.float32 or not gram.flags.c_contiguous:
        raise ValueError("closed_form_weights needs a C-ordered float32 Gram matrix")
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    try:
        invert_spd_in_place(gram, lapack)
    except np.linalg.LinAlgError as error:
        raise ModelFitError(
            f"EASE could not invert XᵀX + λI in float32 at l2={l2:g} ({error}): raise l2."
        ) from error
    precision = gram
    precision /= -precision.diagonal().copy()
    np.fill_diagonal(precision, 0.0)
    return precision


def invert_spd_in_place(matrix: np.ndarray, lapack: Lapack64 | None) -> None:
    """Overwrite a symmetric positive definite float32 matrix with its inverse, by Cholesky
    through ``lapack`` on one thread (OpenBLAS's threaded Cholesky segfaults on large
    matrices; see the module's docstring), or by ``numpy.linalg.inv`` where there is none."""
    if lapack is None:
        matrix[...] = np.linalg.inv(matrix)
        return
    with threadpool_limits(1, user_api="blas"):
        lapack.invert_upper(matrix)
    _mirror_upper_to_lower(matrix)


def _mirror_upper_to_lower(matrix: np.ndarray) -> None:
    """Copy the upper triangle onto the lower one, a block of rows at a time (the transpose of
    a whole triangle would be a second n x n matrix)."""
    n = matrix.shape[0]
    for start in range(0, n, _MIRROR_BLOCK):
        stop = min(start + _MIRROR_BLOCK, n)
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        diagonal_block = matrix[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        diagonal_block[lower] = diagonal_block.T[lower]


@dataclass(frozen=True)
class Lapack64:
    """``spotrf`` and ``spotri`` of a loaded LAPACK with 64-bit integers (the ILP64 interface,
    whose symbols end in ``64_``), called through ctypes."""

    library: str
    potrf: Callable[..., None]
    potri: Callable[..., None]

    def invert_upper(self, matrix: np.ndarray) -> None:
        """Invert a C-ordered symmetric positive definite matrix of the routines' dtype into
        its upper triangle. LAPACK is column-major, so the C-order matrix is its transpose: LAPACK's
        lower triangle ("L") is our upper one."""
        size = ctypes.c_int64(matrix.shape[0])
        info = ctypes.c_int64(0)
        arguments = (b"L", ctypes.byref(size), matrix.ctypes.data, ctypes.byref(size))
        self.potrf(*arguments, ctypes.byref(info), 1)
        if info.value > 0:
            raise np.linalg.LinAlgError(
                f"not positive definite: the leading {info.value}x{info.value} block is singular"
            )
        self.potri(*arguments, ctypes.byref(info), 1)
        if info.value != 0:
            raise np.linalg.LinAlgError(f"potri failed with info={info.value} in {self.library}")


@functools.cache
def find_lapack64() -> Lapack64 | None:
    """``spotrf``/``spotri`` of a loaded 64-bit-index OpenBLAS (numpy's wheels ship one, named
    ``scipy_spotrf_64_``), or None when no loaded BLAS offers them."""
    for library in threadpool_info():
        if library.get("internal_api") != "openblas":
            continue
        handle = ctypes.CDLL(library["filepath"])
        for prefix in ("scipy_", ""):
            potrf = getattr(handle, f"{prefix}spotrf_64_", None)
            potri = getattr(handle, f"{prefix}spotri_64_", None)
            if potrf is not None and potri is not None:
                return Lapack64(library["filepath"], _declared(potrf), _declared(potri))
    return None


def _declared(routine: Callable[..., None]) -> Callable[..., None]:
    """A Fortran ``(uplo, n, a, lda, info)`` routine typed for ctypes, with gfortran's hidden
    length of ``uplo`` last."""
    pointer = ctypes.POINTER(ctypes.c_int64)
    routine.argtypes = [
        ctypes.c_char_p,
        pointer,
        ctypes.c_void_p,
        pointer,
        pointer,
        ctypes.c_size_t,
    ]
    routine.restype = None
    return routine
