"""The solves that ``benchmarks/ease_solve.py`` compares, and the child side of each run.

Every candidate inverts XᵀX + λI and turns P into B as the product does; ``child_solve`` runs one
of them on a saved Gram matrix and ``child_fit`` the product's whole ``EASERecommender.fit``,
each in a child process of its own (the parent starts them as ``ease_solve.py --child-solve``
and ``--child-fit``), so that a crash is an outcome and the memory measured is the child's own.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.linalg
import scipy.linalg.lapack
from threadpoolctl import threadpool_limits

from training.dataset import build_training_data
from training.models.ease import (
    EASERecommender,
    Lapack64,
    _declared,
    _mirror_upper_to_lower,
    closed_form_weights,
    find_lapack64,
    solve_memory,
)

DEFAULT_L2 = 500.0
REFERENCE = "numpy.linalg.inv f64"
ILP64_F32_THREADED = "ILP64 spotrf/spotri f32"
PRODUCT = "product: ILP64 spotrf/spotri f32, 1 thread"


def _scale_to_weights(precision: np.ndarray) -> np.ndarray:
    """B from P, in P's buffer: column j over -P_jj, zero diagonal (as the product does)."""
    precision /= -precision.diagonal().copy()
    np.fill_diagonal(precision, 0.0)
    return precision


def _scipy_inv(gram: np.ndarray) -> np.ndarray:
    return _scale_to_weights(scipy.linalg.inv(gram, overwrite_a=True, check_finite=False))


def _on_one_thread(solve: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def on_one_thread(gram: np.ndarray) -> np.ndarray:
        with threadpool_limits(1, user_api="blas"):
            return solve(gram)

    return on_one_thread


def _numpy_inv(gram: np.ndarray) -> np.ndarray:
    return _scale_to_weights(np.linalg.inv(gram))


def _scipy_cholesky(gram: np.ndarray) -> np.ndarray:
    """scipy's potrf/potri on the C-ordered matrix seen as Fortran-ordered (its transpose, the
    same symmetric matrix): LAPACK's lower triangle is then our upper one, done in place."""
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    factor, info = potrf(gram.T, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise RuntimeError(f"potrf info={info}")
    inverse, info = potri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise RuntimeError(f"potri info={info}")
    precision = inverse.T
    _mirror_upper_to_lower(precision)
    return _scale_to_weights(precision)


def _ilp64_routines(prefix: str) -> Lapack64:
    """``{prefix}potrf``/``{prefix}potri`` of the 64-bit-index OpenBLAS the product found."""
    found = find_lapack64()
    if found is None:
        raise RuntimeError("no 64-bit-index OpenBLAS loaded")
    handle = ctypes.CDLL(found.library)
    symbol = "scipy_{}_64_" if hasattr(handle, "scipy_spotrf_64_") else "{}_64_"
    potrf, potri = (getattr(handle, symbol.format(prefix + name)) for name in ("potrf", "potri"))
    return Lapack64(found.library, _declared(potrf), _declared(potri))


def _ilp64_cholesky(gram: np.ndarray, threads: int | None) -> np.ndarray:
    """The product's Cholesky inverse in ``gram``'s dtype, on ``threads`` (None: all cores)."""
    lapack = _ilp64_routines("d" if gram.dtype == np.float64 else "s")
    with threadpool_limits(threads, user_api="blas"):
        lapack.invert_upper(gram)
    _mirror_upper_to_lower(gram)
    return _scale_to_weights(gram)


def _product(gram: np.ndarray) -> np.ndarray:
    """The product's solve; λ is already on the diagonal, so none is added again."""
    return closed_form_weights(gram, 0.0, find_lapack64())


#: name -> (dtype of the Gram matrix it takes, solve from Gram + λI to B).
CANDIDATES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "scipy.linalg.inv f64": ("float64", _scipy_inv),
    "scipy.linalg.inv f64, 1 thread": ("float64", _on_one_thread(_scipy_inv)),
    "scipy dpotrf/dpotri f64": ("float64", _scipy_cholesky),
    "scipy spotrf/spotri f32": ("float32", _scipy_cholesky),
    REFERENCE: ("float64", _numpy_inv),
    "numpy.linalg.inv f32": ("float32", _numpy_inv),
    "ILP64 dpotrf/dpotri f64": ("float64", lambda gram: _ilp64_cholesky(gram, None)),
    "ILP64 dpotrf/dpotri f64, 1 thread": ("float64", lambda gram: _ilp64_cholesky(gram, 1)),
    ILP64_F32_THREADED: ("float32", lambda gram: _ilp64_cholesky(gram, None)),
    PRODUCT: ("float32", _product),
}


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Make VmHWM the current RSS, so that the peak measured next is the next step's."""
    Path("/proc/self/clear_refs").write_text("5")


def child_solve(candidate: str, gram_dir: Path, l2: float, out: Path) -> None:
    """One candidate on one Gram matrix: write B (``out``.npy) and its figures (``out``.json)."""
    dtype, solve = CANDIDATES[candidate]
    gram = np.load(gram_dir / f"gram_{dtype}.npy")
    gram[np.diag_indices_from(gram)] += gram.dtype.type(l2)
    load = os.getloadavg()[0]
    _reset_peak_rss()
    before = _rss_bytes("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    weights = solve(gram)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    extra = _rss_bytes("VmHWM") - before
    np.save(out.with_suffix(".npy"), weights, allow_pickle=False)
    figures = {"wall_s": wall, "cpu_s": cpu, "extra_bytes": extra, "load": load}
    out.with_suffix(".json").write_text(json.dumps(figures))


def child_fit(size_dir: Path, out: Path) -> None:
    """The product's whole ``EASERecommender.fit`` on a size's training interactions: its
    time, its peak memory above the data it was given, and the estimate it was checked
    against."""
    data = build_training_data(pl.read_parquet(size_dir / "train.parquet"))
    load = os.getloadavg()[0]
    _reset_peak_rss()
    before = _rss_bytes("VmRSS")
    started = time.perf_counter()
    EASERecommender(l2=DEFAULT_L2).fit(data)
    figures = {
        "wall_s": time.perf_counter() - started,
        "extra_bytes": _rss_bytes("VmHWM") - before,
        "estimate_bytes": solve_memory(data.n_items, find_lapack64()).peak_bytes,
        "load": load,
    }
    out.write_text(json.dumps(figures))
