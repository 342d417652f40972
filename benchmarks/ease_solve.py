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
import json
import re
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, update_section
from ease_candidates import (
    CANDIDATES,
    DEFAULT_L2,
    ILP64_F32_THREADED,
    PRODUCT,
    REFERENCE,
    child_fit,
    child_solve,
)
from ease_data import SizeData, ensure_store, prepare_size
from ease_report import SECTION_TITLE, SolveRun, outcome, render_section, run_key

from training.evaluate import evaluate_recommended, recommended_lists
from training.models.ease import EASERecommender

#: The low end of EASE's tuning range, where float32 has the least room.
LOW_L2 = 10.0
#: Candidates run again at the low λ, and the float32 ones run at the crash sizes (24,000
#: items are 2.3 GB in float32, above 2**31 bytes; 32,000 are 4.1 GB, above the float64
#: matrix of 20,000 items, where the threaded Cholesky crashed).
LOW_L2_CANDIDATES = (REFERENCE, "ILP64 dpotrf/dpotri f64", ILP64_F32_THREADED, PRODUCT)
CRASH_CANDIDATES = ("scipy spotrf/spotri f32", ILP64_F32_THREADED, PRODUCT)
#: Rows of B compared at once (two float64 blocks of this many rows).
_COMPARE_ROWS = 1024


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
