"""Benchmark of ``recsys train``: its wall time against the raw library fits it contains.

The target (at 1M members / 100k items / 20M events): ``recsys train`` with popularity,
item-kNN and ALS, one trial each and evaluation on a member sample, takes at most 1.5x the raw
library fits inside it, measured in the same run, with a peak RSS of at most 4 GB.

With ``--trials 1`` the run fits every model three times: on the validation-train part (tuning),
on the whole training split (the fit measured on test) and on all interactions (the refit that
the model artifact serves). The reference replays exactly those fits in a separate child process: it
loads the same interactions with Polars, builds the same three matrices (same split, same
validation window, same event weights, same id universe) and times only the raw ``implicit`` calls
(``AlternatingLeastSquares.fit``, ``BM25Recommender``/``CosineRecommender.fit``) with the
parameters the run chose (read from the artifact's ``manifest.json``), plus popularity counting.
The ratio is therefore our overhead: loading and validating 20M rows, id maps, matrices, member
segments, evaluation, the FAISS index and the model artifact. The members' precomputed serving
lists (``--list-depth``) are left out of the run and timed on its artifact afterwards, on their
own.

``recsys train`` runs in a child process through the console script's own entry point
(``cli.main:main``, same arguments); a few product functions are wrapped there to log a
time per pipeline stage. Each child's peak RSS is its own high-water mark
(``benchmarks/child_process.py``). The results are printed and written to the "Training" section of
``docs/benchmarks.md``; other sections of that file are kept. The exit status is 1 when a
target is missed.

    uv run python benchmarks/train.py --store /tmp/big         # reuse a generated store
    uv run python benchmarks/train.py                          # generate one (about 40 s)
    uv run python benchmarks/train.py --members 20000 --items 5000 --events 400000 --doc ''
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, update_section
from train_programs import HOOKS, LISTS_PROGRAM, PRODUCT_PROGRAM, REFERENCE_PROGRAM, SPLIT_DAYS
from train_report import SECTION_TITLE, Report, Run, gb, render_section

MODELS = "popular,item_knn,als"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="Reuse a store written by `recsys generate` (default: generate one in a temp dir).",
    )
    parser.add_argument("--max-eval-members", type=int, default=20_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="Product/reference pairs; medians are reported."
    )
    parser.add_argument(
        "--doc",
        type=str,
        default=str(BENCHMARKS_DOC),
        help="Markdown file to update ('' for none).",
    )
    return parser.parse_args(argv)


def generate_store(args: argparse.Namespace, out: Path) -> None:
    command = [
        *recsys_command(),
        "generate",
        *("--members", str(args.members), "--items", str(args.items)),
        *("--events", str(args.events), "--seed", str(args.seed), "--out", str(out)),
    ]
    subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def recsys_command() -> list[str]:
    return [sys.executable, "-c", "from cli.main import main; main()"]


def train_arguments(
    store: Path, artifact: Path, max_eval_members: int, models: str = MODELS
) -> list[str]:
    """``recsys train`` on a generated store: one trial per model, no member lists, no MLflow."""
    return [
        "train",
        *("-i", str(store / "interactions.parquet")),
        *("--items", str(store / "items.parquet"), "--members", str(store / "members.parquet")),
        *("--split", f"last-days:{SPLIT_DAYS}", "--models", models),
        *("--trials", "1", "--tune-seconds", "86400"),
        *("--max-eval-members", str(max_eval_members), "--out", str(artifact), "--no-mlflow"),
        *("--list-depth", "0"),
    ]


def measure_once(store: Path, scratch: Path, max_eval_members: int) -> Run:
    """One ``recsys train`` run, then the reference fits on the same data."""
    artifact, log = scratch / "artifact", scratch / "stages.jsonl"
    product = run_child(
        [
            sys.executable,
            "-c",
            PRODUCT_PROGRAM,
            str(log),
            json.dumps(HOOKS),
            *train_arguments(store, artifact, max_eval_members),
        ],
        scratch / "product.out",
        REPO_ROOT,
    )
    if product.returncode != 0:
        print((scratch / "product.out").read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"recsys train failed with status {product.returncode}")
    load_average = os.getloadavg()[:2]
    out = scratch / "reference.json"
    arguments = [str(store), str(artifact), str(out), str(SPLIT_DAYS)]
    reference = run_child(
        [sys.executable, "-c", REFERENCE_PROGRAM, *arguments], scratch / "reference.out", REPO_ROOT
    )
    if reference.returncode != 0:
        print((scratch / "reference.out").read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"the reference fits failed with status {reference.returncode}")
    measured = json.loads(out.read_text())
    lists_out = scratch / "lists.out"
    lists_child = run_child(
        [sys.executable, "-c", LISTS_PROGRAM, str(artifact)], lists_out, REPO_ROOT
    )
    if lists_child.returncode != 0:
        print(lists_out.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"precomputing member lists failed with status {lists_child.returncode}")
    lists = json.loads(lists_out.read_text().strip().splitlines()[-1])
    stages, stage_peaks = stage_times(log, product.wall_s)
    metrics = json.loads((artifact / "metrics.json").read_text())
    return Run(
        product=product,
        reference=reference,
        stages=stages,
        stage_peaks=stage_peaks,
        fits=measured["fits"],
        shapes=measured["shapes"],
        evaluated_members=int(metrics["protocol"]["evaluated_members"]),
        same_matrix=measured["same_matrix_as_artifact"],
        load_average=(load_average[0], load_average[1]),
        lists=lists,
        lists_child=lists_child,
    )


def stage_times(log: Path, wall_s: float) -> tuple[dict[str, float], dict[str, int]]:
    """Exclusive seconds per stage (in order of first appearance), the rest as "other", and the
    peak RSS reached by the end of each stage."""
    stages: dict[str, float] = {}
    peaks: dict[str, int] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        stages[record["stage"]] = stages.get(record["stage"], 0.0) + record["exclusive_s"]
        peaks[record["stage"]] = max(peaks.get(record["stage"], 0), record["peak_rss_bytes"])
    stages["other (start-up, imports, printing)"] = wall_s - sum(stages.values())
    return stages, peaks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="recsys-train-bench-") as scratch:
        store = args.store or Path(scratch) / "store"
        if args.store is None:
            print(f"generating a store of {args.events:,} events into {store}", flush=True)
            generate_store(args, store)
        for repetition in range(args.repeat):
            run_dir = Path(scratch) / f"run-{repetition}"
            run_dir.mkdir()
            run = measure_once(store, run_dir, args.max_eval_members)
            report.runs.append(run)
            print(
                f"run {repetition + 1}: recsys train {run.product.wall_s:.1f} s, raw fits "
                f"{run.reference_s:.1f} s, ratio {run.ratio:.2f}x, peak RSS "
                f"{gb(run.product.peak_rss_bytes)}",
                flush=True,
            )
        section = render_section(report, args, store)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
        print(f"written to {args.doc}")
    return 0 if report.meets_ratio and report.meets_rss else 1


if __name__ == "__main__":
    sys.exit(main())
