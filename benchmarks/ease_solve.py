"""Benchmark of EASE's solve: which inversion of XᵀX + λI survives, how fast, how accurate.

The issue: ``scipy.linalg.inv`` of the float64 Gram matrix of 20,000 items killed ``recsys
train`` with a segmentation fault. Candidates:

- ``scipy.linalg.inv`` float64 (EASE's solve before this benchmark), on all cores and on one
  thread; scipy's LAPACK
  ``dpotrf``/``dpotri`` (Cholesky) in float64 and ``spotrf``/``spotri`` in float32 (scipy's
  bundled OpenBLAS, 32-bit indices);
- ``numpy.linalg.inv`` in float64 and float32 (numpy's OpenBLAS, 64-bit indices; numpy
  computes a float32 inverse in float64);
- ``potrf``/``potri`` of numpy's 64-bit-index OpenBLAS through ctypes ("ILP64"): float64 on
  all cores and on one thread, float32 on all cores;
- the product, ``training.models.ease.closed_form_weights``: ILP64 float32 on one thread, in
  place.

Data: the ``n`` items with the most training members of a generated store (100,000 members,
26,000 items, 3,000,000 events, seed 42), binary histories, the last 30 days as the test
(purchases of items new to the member, at most 10,000 evaluated members). The parent builds
each size's Gram matrix once (``dense_gram``) and saves it in float64 and float32; every
candidate then runs in a child process of its own (``benchmarks/child_process.py``), so a
crash is recorded with its signal instead of ending the benchmark. A child loads the Gram
matrix in its candidate's dtype, adds λ, solves, turns P into B (column j over -P_jj, zero
diagonal) and saves B; its time is the solve and B only (wall and CPU seconds, with the load
average as it started: the machine is shared), its memory the peak above what it held once
the Gram matrix was loaded (``VmHWM`` reset through ``/proc/self/clear_refs``).

Accuracy is against ``numpy.linalg.inv`` in float64 (safe at every size run): the largest
absolute difference of B, and the top-10 lists (training purchases excluded, scored as EASE
scores) that agree item for item, with each candidate's P@10 and NDCG@10. The product's whole
``EASERecommender.fit`` is also run per size in a child, its peak memory above the data held
before it set beside the estimate that ``check_fits_in_memory`` compares with the memory
available. Results go to the "EASE solve" section of ``docs/benchmarks.md``.

    uv run python benchmarks/ease_solve.py --work DIR           # everything, about 2 hours
    uv run python benchmarks/ease_solve.py --sizes 2000 --crash-sizes '' --doc ''   # a quick look
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp
from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section
from threadpoolctl import threadpool_limits

from features import columns as col
from features.splits import parse_split_spec
from features.synthetic import StoreConfig, generate_store
from training.dataset import TrainingData, build_training_data
from training.evaluate import EvaluationTask, evaluate_recommended, recommended_lists
from training.models.ease import (
    USABLE_MEMORY_SHARE,
    EASERecommender,
    Lapack64,
    _declared,
    _mirror_upper_to_lower,
    available_memory_bytes,
    closed_form_weights,
    dense_gram,
    find_lapack64,
    largest_catalogue,
    solve_memory,
)

SECTION_TITLE = "## EASE solve"
STORE_SIZE = {"members": 100_000, "items": 26_000, "events": 3_000_000, "seed": 42}
SPLIT = "last-days:30"
MAX_EVALUATED_MEMBERS = 10_000
DEFAULT_L2 = 500.0
#: The low end of EASE's tuning range, where float32 has the least room.
LOW_L2 = 10.0
REFERENCE = "numpy.linalg.inv f64"
ILP64_F32_THREADED = "ILP64 spotrf/spotri f32"
PRODUCT = "product: ILP64 spotrf/spotri f32, 1 thread"
#: Candidates run again at the low λ, and the float32 ones run at the crash sizes (24,000
#: items are 2.3 GB in float32, above 2**31 bytes; 32,000 are 4.1 GB, above the float64
#: matrix of 20,000 items, where the threaded Cholesky crashed).
LOW_L2_CANDIDATES = (REFERENCE, "ILP64 dpotrf/dpotri f64", ILP64_F32_THREADED, PRODUCT)
CRASH_CANDIDATES = ("scipy spotrf/spotri f32", ILP64_F32_THREADED, PRODUCT)
#: Rows of B compared at once (two float64 blocks of this many rows).
_COMPARE_ROWS = 1024


# -- the candidates (run in the child) ------------------------------------------------------


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


# -- the parent ---------------------------------------------------------------------------------


@dataclass
class SolveRun:
    """One candidate at one size and λ: how it ended and, when it ended well, its figures."""

    candidate: str
    n_items: int
    l2: float
    returncode: int
    wall_s: float | None = None
    cpu_s: float | None = None
    load: float | None = None
    extra_bytes: int | None = None
    max_abs_error: float | None = None
    top10_agreement: float | None = None
    precision_at_10: float | None = None
    ndcg_at_10: float | None = None
    error_tail: str = ""

    @property
    def key(self) -> str:
        return run_key(self.candidate, self.n_items, self.l2)


def run_key(candidate: str, n_items: int, l2: float) -> str:
    return f"{candidate}|{n_items}|{l2:g}"


@dataclass(frozen=True)
class SizeData:
    """A size's training data and evaluation task, built once in the parent."""

    directory: Path
    data: TrainingData
    task: EvaluationTask


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="2000,5000,12000,20000", help="Item counts, comma-separated."
    )
    parser.add_argument(
        "--low-l2-size", type=int, default=12_000, help="Size of the λ=10 runs (0: none)."
    )
    parser.add_argument(
        "--crash-sizes",
        default="24000,32000",
        help="Sizes of the float32 crash check, comma-separated ('' for none).",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="Work directory (kept; runs found there are reused).",
    )
    parser.add_argument("--doc", type=str, default=str(BENCHMARKS_DOC), help="'' for none")
    return parser.parse_args(argv)


def ensure_store(work: Path, n_items: int) -> Path:
    """The generated store a size reads: the main one, or for a size beyond its items one with
    2,000 items to spare (the same members, events and seed)."""
    items = max(STORE_SIZE["items"], n_items + 2_000)
    store = work / ("store" if items == STORE_SIZE["items"] else f"store-{items}-items")
    if not (store / "interactions.parquet").is_file():
        generate_store(StoreConfig(**{**STORE_SIZE, "items": items}), store)
    return store


def prepare_size(store: Path, work: Path, n_items: int, dtypes: set[str]) -> SizeData:
    """The ``n_items`` items with the most training members: their training interactions
    (saved for the fit child), the evaluation task, and the Gram matrix in ``dtypes``."""
    directory = work / f"n{n_items}"
    directory.mkdir(parents=True, exist_ok=True)
    split = parse_split_spec(SPLIT).split(pl.read_parquet(store / "interactions.parquet"))
    kept = (
        split.train.group_by(col.ITEM_ID)
        .agg(pl.col(col.MEMBER_ID).n_unique().alias("members"))
        .sort(["members", col.ITEM_ID], descending=[True, False])
        .head(n_items)
        .get_column(col.ITEM_ID)
    )
    if len(kept) < n_items:
        raise SystemExit(
            f"the store has only {len(kept)} items with training events, not {n_items}"
        )
    train = split.train.filter(pl.col(col.ITEM_ID).is_in(kept.implode()))
    train.write_parquet(directory / "train.parquet")
    data = build_training_data(train)
    task = EvaluationTask.from_split(data, split.test, max_members=MAX_EVALUATED_MEMBERS, seed=42)
    missing = [dtype for dtype in dtypes if not (directory / f"gram_{dtype}.npy").is_file()]
    if missing:
        gram = dense_gram(binary_histories(data.matrix))
        for dtype in missing:
            np.save(directory / f"gram_{dtype}.npy", gram.astype(dtype), allow_pickle=False)
    return SizeData(directory, data, task)


def binary_histories(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """EASE's binary view of the histories, as ``EASERecommender`` prepares it."""
    return sp.csr_matrix(matrix != 0, dtype=np.float32)


def run_candidate(candidate: str, size: SizeData, l2: float) -> SolveRun:
    n_items = size.data.n_items
    out = weights_path(size, candidate, l2).with_suffix("")
    log = out.with_suffix(".log")
    command = [
        sys.executable,
        __file__,
        "--child-solve",
        candidate,
        str(size.directory),
        str(l2),
        str(out),
    ]
    print(f"  {candidate} at n={n_items:,}, l2={l2:g} ...", flush=True)
    result = run_child(command, log, REPO_ROOT)
    run = SolveRun(candidate, n_items, l2, result.returncode)
    if result.returncode == 0:
        figures = json.loads(out.with_suffix(".json").read_text())
        run.wall_s, run.cpu_s = figures["wall_s"], figures["cpu_s"]
        run.load, run.extra_bytes = figures["load"], figures["extra_bytes"]
    else:
        run.error_tail = log.read_text()[-400:]
    print(f"    {outcome(run)}" + (f", {run.wall_s:.1f} s" if run.wall_s else ""), flush=True)
    return run


def weights_path(size: SizeData, candidate: str, l2: float) -> Path:
    """Where a run's B goes (its figures and log beside it, same stem, no dots in the stem)."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", f"{candidate} l2 {l2:g}")
    return size.directory / f"{stem}.npy"


def score_against_reference(runs: list[SolveRun], size: SizeData, l2: float) -> None:
    """Fill in each finished run's error, top-10 agreement and metrics, then delete its B."""
    reference_path = weights_path(size, REFERENCE, l2)
    reference = np.load(reference_path, mmap_mode="r")
    reference_lists = recommended_lists(_model_of(reference), size.task, 10)
    for run in runs:
        path = weights_path(size, run.candidate, l2)
        if run.returncode != 0 or not path.is_file():
            continue
        weights = np.load(path, mmap_mode="r")
        run.max_abs_error = _max_abs_difference(weights, reference)
        lists = recommended_lists(_model_of(weights), size.task, 10)
        run.top10_agreement = float((lists == reference_lists).mean())
        metrics = evaluate_recommended(lists, size.task, (10,))
        run.precision_at_10, run.ndcg_at_10 = metrics["precision@10"], metrics["ndcg@10"]
        if path != reference_path:
            path.unlink()
    del reference
    reference_path.unlink()


def _model_of(weights: np.ndarray) -> EASERecommender:
    """An EASE model holding a candidate's B (float32, as the product stores it)."""
    model = EASERecommender()
    model.weights = np.asarray(weights, dtype=np.float32)
    model.n_items = weights.shape[0]
    return model


def _max_abs_difference(left: np.ndarray, right: np.ndarray) -> float:
    largest = 0.0
    for start in range(0, left.shape[0], _COMPARE_ROWS):
        rows = slice(start, start + _COMPARE_ROWS)
        difference = np.abs(
            np.asarray(left[rows], np.float64) - np.asarray(right[rows], np.float64)
        )
        largest = max(largest, float(difference.max()))
    return largest


def run_fit(size: SizeData) -> dict[str, float]:
    out = size.directory / "fit.json"
    command = [sys.executable, __file__, "--child-fit", str(size.directory), str(out)]
    print(f"  EASERecommender.fit at n={size.data.n_items:,} ...", flush=True)
    result = run_child(command, size.directory / "fit.log", REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(
            f"the product's fit failed: {(size.directory / 'fit.log').read_text()[-800:]}"
        )
    return {"n_items": size.data.n_items, **json.loads(out.read_text())}


def outcome(run: SolveRun) -> str:
    if run.returncode == 0:
        return "ok"
    if run.returncode < 0:
        return f"crashed ({signal.Signals(-run.returncode).name})"
    return f"failed (exit {run.returncode})"


def measure(args: argparse.Namespace, work: Path) -> tuple[list[SolveRun], list[dict[str, float]]]:
    """Every planned run, in order of size. Runs already recorded in ``work`` are kept; a
    group (size, λ) with new runs runs the reference again, to score them against."""
    results_file = work / "results.json"
    empty: dict[str, dict] = {"solves": {}, "fits": {}}
    done = json.loads(results_file.read_text()) if results_file.is_file() else empty
    main_sizes = _sizes(args.sizes)
    for n_items in sorted(main_sizes | _sizes(args.crash_sizes)):
        plan = planned_runs(n_items, args)
        missing = [(c, l2) for c, l2 in plan if run_key(c, n_items, l2) not in done["solves"]]
        fit_missing = n_items in main_sizes and str(n_items) not in done["fits"]
        if not missing and not fit_missing:
            continue
        print(f"n = {n_items:,}", flush=True)
        groups = {l2: _with_reference(plan, missing, l2) for l2 in {l2 for _, l2 in missing}}
        dtypes = {CANDIDATES[c][0] for candidates in groups.values() for c in candidates}
        size = prepare_size(ensure_store(work, n_items), work, n_items, dtypes)
        for l2, candidates in sorted(groups.items(), reverse=True):
            runs = [run_candidate(candidate, size, l2) for candidate in candidates]
            if any(r.candidate == REFERENCE and r.returncode == 0 for r in runs):
                score_against_reference(runs, size, l2)
            done["solves"].update({run.key: asdict(run) for run in runs})
            results_file.write_text(json.dumps(done, indent=1))
        if fit_missing:
            done["fits"][str(n_items)] = run_fit(size)
            results_file.write_text(json.dumps(done, indent=1))
    solves = [SolveRun(**record) for record in done["solves"].values()]
    return solves, list(done["fits"].values())


def _sizes(text: str) -> set[int]:
    return {int(size) for size in text.split(",") if size.strip()}


def _with_reference(
    plan: list[tuple[str, float]], missing: list[tuple[str, float]], l2: float
) -> list[str]:
    """The missing candidates at ``l2``, with the reference first when the plan has one."""
    wanted = {c for c, at in missing if at == l2}
    if (REFERENCE, l2) in plan:
        wanted.add(REFERENCE)
    return [c for c in CANDIDATES if c in wanted]


def planned_runs(n_items: int, args: argparse.Namespace) -> list[tuple[str, float]]:
    """(candidate, λ) pairs at a size: every candidate at the default λ on the main sizes, the
    low-λ ones at ``--low-l2-size``, the float32 ones at the crash sizes."""
    plan: list[tuple[str, float]] = []
    if n_items in _sizes(args.sizes):
        plan += [(candidate, DEFAULT_L2) for candidate in CANDIDATES]
    elif n_items in _sizes(args.crash_sizes):
        plan += [(candidate, DEFAULT_L2) for candidate in CRASH_CANDIDATES]
    if n_items == args.low_l2_size:
        plan += [(candidate, LOW_L2) for candidate in LOW_L2_CANDIDATES]
    return plan


# -- the section --------------------------------------------------------------------------------


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**30:.2f}"


def _figure(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def render_section(solves: list[SolveRun], fits: list[dict[str, float]], command: str) -> str:
    order = list(CANDIDATES)
    solves = sorted(solves, key=lambda r: (-r.l2, r.n_items, order.index(r.candidate)))
    rows = [
        f"| {r.n_items:,} | {r.l2:g} | {r.candidate} | {outcome(r)} | {_figure(r.wall_s, '.1f')} | "
        f"{_figure(r.cpu_s, '.1f')} | {_figure(r.load, '.1f')} | {_gib(r.extra_bytes)} | "
        f"{_figure(r.max_abs_error, '.1e')} | {_figure(r.top10_agreement, '.4f')} | "
        f"{_figure(r.precision_at_10, '.4f')} | {_figure(r.ndcg_at_10, '.4f')} |"
        for r in solves
    ]
    fit_rows = [
        f"| {int(f['n_items']):,} | {f['wall_s']:.1f} | {f['load']:.1f} | "
        f"{_gib(f['extra_bytes'])} | {_gib(f['estimate_bytes'])} |"
        for f in sorted(fits, key=lambda f: f["n_items"])
    ]
    available = available_memory_bytes()
    memory = solve_memory(1, find_lapack64())
    largest = largest_catalogue(memory, int(available * USABLE_MEMORY_SHARE))
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            "EASE inverts the item x item matrix XᵀX + λI. Each candidate solve ran in a child "
            "process of its own (a crash is an outcome, not the end of the run) on the Gram matrix "
            "of the n items with the most training members of a generated store "
            f"({STORE_SIZE['members']:,} members, {STORE_SIZE['items']:,} items, "
            f"{STORE_SIZE['events']:,} events, seed {STORE_SIZE['seed']}; binary histories; test: "
            f"the last 30 days, at most {MAX_EVALUATED_MEMBERS:,} evaluated members). Time: the "
            "solve and B = -P / diag(P) only, wall and CPU seconds, with the 1-minute load "
            "average as it started (the 2 cores are shared, so wall times vary by 2x or more "
            "between runs); memory: the child's peak above what it held with the Gram matrix "
            "loaded. Accuracy "
            f"against `{REFERENCE}`: the largest |ΔB| and the share of top-10 slots (training "
            "purchases excluded) holding the same item. Sizes above the main store's items come "
            "from a store with 2,000 items more (same members, events and seed); only float32 "
            "candidates run there. Runs recorded in the work directory are reused, so rows can "
            "come from different passes; the load column tells each one's conditions.",
            "",
            "| | |",
            "|---|---|",
            f"| date | {datetime.now(UTC).date().isoformat()} |",
            f"| command | `{command}` |",
            f"| machine | {machine_description()} |",
            "",
            "| n items | λ | solve | outcome | wall s | CPU s | load | extra GiB | max abs ΔB | "
            "top-10 agreement | P@10 | NDCG@10 |",
            "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *_summary(solves),
            "",
            "The product's whole `EASERecommender.fit` (Gram matrix, solve, weights) in a child "
            "process, its peak memory above the training data it was handed, beside the estimate "
            "that `check_fits_in_memory` compares with the memory available (the peak is "
            "measured as VmHWM above the RSS before the fit, so memory freed earlier and reused "
            "is not counted):",
            "",
            "| n items | fit wall s | load | peak above data GiB | estimate GiB |",
            "|---:|---:|---:|---:|---:|",
            *fit_rows,
            "",
            f"With {available / 2**30:.1f} GiB available as this section was written, a fit may "
            f"plan {USABLE_MEMORY_SHARE:.0%} of it: the estimate admits up to about {largest:,} "
            "items; above, `EASERecommender.fit` refuses with the numbers before allocating "
            "anything quadratic.",
            "",
        ]
    )


def _summary(solves: list[SolveRun]) -> list[str]:
    """What crashed where, and the product against the reference at the largest size both ran."""
    crashed: dict[str, list[str]] = {}
    for run in solves:
        if run.returncode < 0:
            crashed.setdefault(run.candidate, []).append(f"{run.n_items:,}")
    lines = [
        "Crashed: "
        + "; ".join(f"`{name}` at {', '.join(sizes)}" for name, sizes in crashed.items())
        + f". `{PRODUCT}` completed at every size."
    ]
    finished = {
        (r.candidate, r.n_items): r for r in solves if r.returncode == 0 and r.l2 == DEFAULT_L2
    }
    both = [n for (c, n) in finished if c == PRODUCT and (REFERENCE, n) in finished]
    if both:
        n_items = max(both)
        product, reference = finished[PRODUCT, n_items], finished[REFERENCE, n_items]
        lines += [
            "",
            f"At {n_items:,} items the product took {product.wall_s:.0f} s and "
            f"{_gib(product.extra_bytes)} GiB above the Gram matrix, against "
            f"{reference.wall_s:.0f} s and {_gib(reference.extra_bytes)} GiB for `{REFERENCE}`, "
            f"with max |ΔB| {product.max_abs_error:.1e} and top-10 agreement "
            f"{product.top10_agreement:.4f}.",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-solve"]:
        child_solve(argv[1], Path(argv[2]), float(argv[3]), Path(argv[4]))
        return 0
    if argv[:1] == ["--child-fit"]:
        child_fit(Path(argv[1]), Path(argv[2]))
        return 0
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ease-solve-"))
    work.mkdir(parents=True, exist_ok=True)
    solves, fits = measure(args, work)
    command = "uv run python benchmarks/ease_solve.py " + " ".join(argv)
    section = render_section(solves, fits, command.strip())
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    raise SystemExit(main())
