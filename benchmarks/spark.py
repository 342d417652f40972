"""Benchmark of the two training engines: ``recsys train`` (implicit) against ``--engine spark``.

For each store size (events from 2M to 20M; members = events / 20 and items = events / 200,
the shape of the 1M x 100k x 20M store of the training benchmark), both engines train the same
generated store with the same protocol (``last-days:30``, popular and ALS, one trial each,
evaluation on a member sample, the refit on all data, no member lists, no MLflow), each in a
child process of its own. Measured per run: the wall time, the peak RSS of the ``recsys``
process itself (``VmHWM``) and the peak of the process tree (the Python driver and the JVM that
pyspark starts; ``benchmarks/child_process.py``), and the test P@10 and NDCG@10 of ALS and of
popularity from the run's ``metrics.json``.

Where one machine stops fitting: a straight line through each engine's measured peaks (least
squares over the sizes run) is extrapolated to this machine's memory; the sizes it names are an
extrapolation, and the section says so.

Runs are kept in ``--work`` (stores and one ``result-<engine>-<events>.json`` per run), so
``--reuse`` renders the section from the runs already made and runs only the missing ones:
sizes can be added one at a time.

    uv run python benchmarks/spark.py --work /tmp/spark-bench --sizes 2000000,5000000 --reuse
    uv run python benchmarks/spark.py --work /tmp/spark-bench --reuse          # all four sizes
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import psutil
from child_process import run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section
from train import recsys_command, train_arguments

from training.spark.session import local_driver_memory

SECTION_TITLE = "## Training engines (implicit and Spark)"
ENGINES = ("implicit", "spark")
MODELS = "popular,als"
DEFAULT_SIZES = (2_000_000, 5_000_000, 10_000_000, 20_000_000)
METRICS = ("precision@10", "ndcg@10")
RUNS_HEADER = (
    "| events | members x items | engine | wall s | peak RSS (recsys) | peak RSS (tree) "
    "| ALS P@10 | popular P@10 | ALS NDCG@10 |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|"
)


@dataclass(frozen=True)
class EngineRun:
    """One engine's training of one store."""

    engine: str
    events: int
    wall_s: float
    peak_rss_bytes: int
    peak_tree_rss_bytes: int
    #: Test figures of the train-only fits, per model and metric.
    metrics: dict[str, dict[str, float]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Stores and runs are kept here.")
    parser.add_argument(
        "--sizes",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=DEFAULT_SIZES,
        help="Comma-separated event counts.",
    )
    parser.add_argument("--master", default="local[2]", help="Spark master of the Spark runs.")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        help="A Spark setting of the Spark runs, KEY=VALUE (repeat it); default: the product's "
        "(a local master's heap is half the machine's memory).",
    )
    parser.add_argument("--max-eval-members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reuse", action="store_true", help="Keep runs already in --work.")
    parser.add_argument("--doc", default=str(BENCHMARKS_DOC), help="Markdown file ('' for none).")
    return parser.parse_args(argv)


def store_for(work: Path, events: int, seed: int) -> Path:
    """The generated store of ``events`` events (made once, then reused)."""
    store = work / f"store-{events}"
    if not (store / "interactions.parquet").exists():
        command = [
            *recsys_command(),
            "generate",
            *("--members", str(events // 20), "--items", str(events // 200)),
            *("--events", str(events), "--seed", str(seed), "--out", str(store)),
        ]
        out = work / f"generate-{events}.out"
        result = run_child(command, out, REPO_ROOT)
        if result.returncode != 0:
            raise SystemExit(f"recsys generate failed: {out.read_text()[-2000:]}")
    return store


def run_engine(args: argparse.Namespace, engine: str, events: int) -> EngineRun:
    """Train the store of ``events`` with ``engine`` (kept in --work, reused with --reuse)."""
    result_path = args.work / f"result-{engine}-{events}.json"
    if args.reuse and result_path.exists():
        return EngineRun(**json.loads(result_path.read_text()))
    store = store_for(args.work, events, args.seed)
    artifact = args.work / f"artifact-{engine}-{events}"
    command = [
        *recsys_command(),
        *train_arguments(store, artifact, args.max_eval_members, MODELS),
        *("--engine", engine),
        *(("--spark-master", args.master) if engine == "spark" else ()),
        *(option for entry in args.spark_conf if engine == "spark"
          for option in ("--spark-conf", entry)),
    ]  # fmt: skip
    out = args.work / f"train-{engine}-{events}.out"
    print(f"{engine}: training {events:,} events", flush=True)
    child = run_child(command, out, REPO_ROOT)
    if child.returncode != 0:
        raise SystemExit(f"{engine} training failed ({out}): {out.read_text()[-3000:]}")
    tested = json.loads((artifact / "metrics.json").read_text())["models"]
    run = EngineRun(
        engine=engine,
        events=events,
        wall_s=child.wall_s,
        peak_rss_bytes=child.peak_rss_bytes,
        peak_tree_rss_bytes=child.peak_tree_rss_bytes,
        metrics={
            model: {metric: float(tested[model][metric]) for metric in METRICS}
            for model in ("popular", "als")
            if model in tested
        },
    )
    result_path.write_text(json.dumps(asdict(run), indent=2))
    print(
        f"{engine}: {events:,} events in {run.wall_s:.0f} s, peak RSS {gb(run.peak_rss_bytes)} "
        f"(with children {gb(run.peak_tree_rss_bytes)})",
        flush=True,
    )
    return run


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def fitting_limit(runs: list[EngineRun], memory_bytes: int) -> tuple[float, float, float] | None:
    """Slope (bytes per event), intercept and the events at which the line through the measured
    peaks reaches ``memory_bytes``; None with fewer than two sizes or no growth."""
    if len(runs) < 2:
        return None
    events = np.array([run.events for run in runs], dtype=float)
    peaks = np.array([run.peak_tree_rss_bytes for run in runs], dtype=float)
    slope, intercept = np.polyfit(events, peaks, 1)
    if slope <= 0:
        return None
    return float(slope), float(intercept), float((memory_bytes - intercept) / slope)


def render_section(args: argparse.Namespace, runs: list[EngineRun]) -> str:
    memory = psutil.virtual_memory().total
    local_heap_gb = int(local_driver_memory().rstrip("m")) * 2**20 / 1e9
    by_key = {(run.engine, run.events): run for run in runs}
    sizes = sorted({run.events for run in runs})
    rows = []
    for events in sizes:
        for engine in ENGINES:
            run = by_key.get((engine, events))
            if run is None:
                continue
            als = run.metrics.get("als", {})
            popular = run.metrics.get("popular", {})
            rows.append(
                f"| {events:,} | {events // 20:,} x {events // 200:,} | {engine} | "
                f"{run.wall_s:,.0f} | {gb(run.peak_rss_bytes)} | {gb(run.peak_tree_rss_bytes)} | "
                f"{als.get('precision@10', float('nan')):.4f} | "
                f"{popular.get('precision@10', float('nan')):.4f} | "
                f"{als.get('ndcg@10', float('nan')):.4f} |"
            )
    ratios = []
    for events in sizes:
        single, spark = by_key.get(("implicit", events)), by_key.get(("spark", events))
        if single and spark:
            p_single = single.metrics["als"]["precision@10"]
            p_spark = spark.metrics["als"]["precision@10"]
            ratios.append(
                f"| {events:,} | {spark.wall_s / single.wall_s:.2f}x | "
                f"{spark.peak_tree_rss_bytes / single.peak_tree_rss_bytes:.2f}x | "
                f"{(p_spark - p_single) / p_single:+.1%} |"
            )
    limits = []
    for engine in ENGINES:
        engine_runs = sorted((r for r in runs if r.engine == engine), key=lambda r: r.events)
        limit = fitting_limit(engine_runs, memory)
        if limit is None:
            limits.append(f"- {engine}: too few sizes measured to draw a line.")
            continue
        slope, intercept, events_at_limit = limit
        limits.append(
            f"- {engine}: {slope:.0f} bytes per event above {gb(intercept)} (least squares over "
            f"{len(engine_runs)} sizes, {engine_runs[0].events:,} to {engine_runs[-1].events:,} "
            f"events); the line reaches this machine's {gb(memory)} at about "
            f"**{events_at_limit / 1e6:,.0f}M events** (an extrapolation, not a measurement)."
        )
    conf = ", ".join(f"`{entry}`" for entry in args.spark_conf) or (
        f"the product's defaults (a local master's JVM heap: half this machine's memory, "
        f"{local_heap_gb:.1f} GB)"
    )
    return f"""{SECTION_TITLE}

`recsys train` with the single-machine engine (implicit) and with `--engine spark`
(`--spark-master {args.master}`: Spark MLlib's ALS, Spark for validation, matrices, popularity
and rules), on the same generated store per size, the same protocol (`last-days:30`, popular and
ALS with one trial each, evaluation on at most {args.max_eval_members:,} members, the refit on
all data) and the same ALS parameters. Spark settings: {conf}.
One run per engine and size, each in a child process; the machine is shared, so expect 10%
noise on times. "Tree" is the peak of the summed RSS of the process and its children (the JVM
that pyspark starts), polled every 20 ms; for the implicit engine the two are the same process.

| | |
|---|---|
| date | {date.today().isoformat()} |
| command | `uv run python benchmarks/spark.py --work DIR --sizes {",".join(map(str, sizes))}` |
| machine | {machine_description()} |

{RUNS_HEADER}
{chr(10).join(rows)}

Spark against implicit, same size:

| events | wall time | peak RSS (tree) | ALS P@10 |
|---:|---:|---:|---:|
{chr(10).join(ratios)}

Where each engine stops fitting on this machine:

{chr(10).join(limits)}

The Spark tree's peak follows the heap its JVM is given more than the data: the JVM grows its
heap up to the limit before it collects much, and with Spark's own 1 GB limit the same 5M-event
run ran out of heap (`java.lang.OutOfMemoryError`), which is why a local master gets half the
machine by default. So the Spark line says where the default heap stops fitting beside the
driver, not what Spark needs; the Python driver's own peak (the "recsys" column) is what grows
with the data, as the implicit engine's does.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    runs = [run_engine(args, engine, events) for events in args.sizes for engine in ENGINES]
    if args.reuse:  # every run already in the work directory goes into the section
        for path in sorted(args.work.glob("result-*.json")):
            run = EngineRun(**json.loads(path.read_text()))
            if (run.engine, run.events) not in {(r.engine, r.events) for r in runs}:
                runs.append(run)
    section = render_section(args, runs)
    print(section)
    if args.doc:
        update_section(Path(args.doc), SECTION_TITLE, section)
        print(f"written to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
