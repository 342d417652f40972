"""Sparse matrices of a saved model as plain ``.npy`` arrays, so that they memory-map.

``scipy.sparse.save_npz`` writes a zip, which numpy cannot map: every worker would load its
own copy. Models whose sparse state grows with the members (next-basket vectors, neighbour
rows) save the three CSR arrays instead, the way the model artifact saves its histories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["load_csr", "save_csr"]

_PARTS = ("data", "indices", "indptr")


def save_csr(directory: Path, stem: str, matrix: sp.csr_matrix) -> None:
    """Write ``<stem>_data.npy``, ``<stem>_indices.npy`` and ``<stem>_indptr.npy``.

    The matrix is rebuilt from its arrays first, as :func:`load_csr` builds it, so that the
    index dtype saved is the one scipy picks when loading (otherwise it would convert, i.e.
    copy, the mapped arrays), and made canonical (sorted, no duplicates) so that scipy never
    fixes the read-only arrays in place.
    """
    csr = sp.csr_matrix(matrix)
    canonical = sp.csr_matrix((csr.data, csr.indices, csr.indptr), shape=csr.shape, copy=True)
    canonical.sum_duplicates()
    for part in _PARTS:
        np.save(
            directory / f"{stem}_{part}.npy",
            np.ascontiguousarray(getattr(canonical, part)),
            allow_pickle=False,
        )


def load_csr(directory: Path, stem: str, n_columns: int, mmap: bool) -> sp.csr_matrix:
    """The matrix :func:`save_csr` wrote (its row count is its ``indptr``'s length less one);
    with ``mmap`` its arrays stay on disk, shared by every process that maps them."""
    mode = "r" if mmap else None
    data, indices, indptr = (
        np.load(directory / f"{stem}_{part}.npy", mmap_mode=mode, allow_pickle=False)
        for part in _PARTS
    )
    shape = (len(indptr) - 1, n_columns)
    return sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
