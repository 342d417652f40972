"""Benchmark of ``recsys train``: its wall time against the raw library fits it contains.

The target (at 1M members / 100k items / 20M events): ``recsys train`` with popularity,
item-kNN and ALS, one trial each and evaluation on a member sample, takes at most 1.5x the raw
library fits inside it, measured in the same run, with a peak RSS of at most 8 GB.

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
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from child_process import ChildResult, run_child
from docs_section import BENCHMARKS_DOC, REPO_ROOT, machine_description, update_section

SECTION_TITLE = "## Training"
MODELS = "popular,item_knn,als"
SPLIT_DAYS = 30
#: The targets: wall time at most this multiple of the raw fits, peak RSS at most 8 GB.
RATIO_TARGET = 1.5
RSS_TARGET_BYTES = 8 * 10**9

#: Runs ``recsys train`` (``cli.main:main``, as the console script does) with timing hooks.
#: argv: the JSON-lines log path, then the ``recsys`` arguments. Each hooked call logs its
#: stage, its inclusive time and its time minus the hooked calls nested in it, so that stages
#: add up without double counting (fits happen inside tuning, for example).
PRODUCT_PROGRAM = r"""
import functools, importlib, json, resource, sys, time

log = open(sys.argv[1], "w")
stack = []

def hooked(function, stage):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        stack.append(0.0)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            nested = stack.pop()
            if stack:
                stack[-1] += elapsed
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            record = {"stage": stage, "inclusive_s": elapsed, "exclusive_s": elapsed - nested,
                      "peak_rss_bytes": peak}
            log.write(json.dumps(record) + "\n")
            log.flush()
    return wrapper

HOOKS = json.loads(sys.argv[2])
for module_name, owner, attribute, stage in HOOKS:
    try:
        target = importlib.import_module(module_name)
        if owner:
            target = getattr(target, owner)
        setattr(target, attribute, hooked(getattr(target, attribute), stage))
    except (ImportError, AttributeError) as error:
        print(f"benchmark: no timing hook for {module_name}.{owner}.{attribute}: {error}",
              file=sys.stderr)

from cli.main import main
sys.argv = ["recsys", *sys.argv[3:]]
main()
"""

#: (module, class or "", attribute, stage). Stages not hooked (start-up, imports, printing)
#: end up in "other". Fits are hooked on the model classes, so tuning fits count as fits.
HOOKS: list[tuple[str, str, str, str]] = [
    ("cli.train", "", "load_with_options", "load + validate interactions"),
    ("cli.train", "", "load_items", "load + validate items and members"),
    ("cli.train", "", "load_members", "load + validate items and members"),
    ("cli.train", "", "_split_for_training", "train/test split"),
    ("training.train", "", "carve_validation", "validation split"),
    ("features.splits", "Split", "describe", "split summaries (row and id counts) x2"),
    ("training.train", "", "_training_data", "training data (segments, id maps, matrix) x3"),
    ("training.train", "", "_task", "evaluation tasks x2"),
    ("training.models.popular", "PopularityRecommender", "fit", "fit popular"),
    ("training.models.item_knn", "ItemKNNRecommender", "fit", "fit item_knn"),
    ("training.models.als", "ALSRecommender", "fit", "fit als"),
    ("training.tune", "", "evaluate_model", "evaluation (validation and test)"),
    ("training.lineup", "", "recommended_lists", "evaluation (validation and test)"),
    ("training.lineup", "", "evaluate_recommended", "evaluation (validation and test)"),
    ("training.lineup", "", "evaluate_by_segment", "evaluation (validation and test)"),
    ("training.lineup", "", "build_indexes", "FAISS index + recall"),
    ("training.publish", "", "write_training_artifact", "model artifact writing"),
]

#: Precomputing the members' serving lists on the run's model artifact, timed on its own. argv:
#: the artifact directory. ``recsys train`` runs with ``--list-depth 0`` above: the lists are a
#: serving cache computed after training, not part of the fit-versus-overhead comparison, so
#: their cost at this size is reported beside it instead.
LISTS_PROGRAM = r"""
import json, sys, time
from pathlib import Path
from training.artifact import load_artifact
from training.config import DEFAULT_LIST_DEPTH
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender

artifact = load_artifact(Path(sys.argv[1]), verify=False, model_classes=MODEL_CLASSES)
started = time.perf_counter()
lists = ArtifactRecommender(artifact).member_lists(DEFAULT_LIST_DEPTH)
print(json.dumps({"seconds": time.perf_counter() - started, "members": len(artifact.member_ids),
                  "depth": lists.depth, "model": lists.model}))
"""

#: The raw-library reference. argv: store directory, model artifact directory, output JSON path.
#: It rebuilds the run's three matrices from the parquet files and times only the library fits.
REFERENCE_PROGRAM = r"""
import json, sys, time, warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from implicit.utils import ParameterWarning
from threadpoolctl import threadpool_limits

store, artifact, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
split_days = int(sys.argv[4])
manifest = json.loads((artifact / "manifest.json").read_text())
config = json.loads((artifact / "metrics.json").read_text())["config"]
params = manifest["params"]
weights = config["event_weights"]
if config.get("half_life_days") is not None or params["als"].get("bm25_weighting"):
    sys.exit("reference: time decay and BM25-weighted ALS are not replayed")

# The validated interactions: the generated store is clean, so validation only drops exact
# repeats of a whole row.
raw = pl.read_parquet(store / "interactions.parquet")
frame = raw.unique(maintain_order=True).select("member_id", "item_id", "event", "timestamp")
del raw
catalog = pl.read_parquet(store / "items.parquet", columns=["item_id"]).get_column("item_id")

def last_days(frame, days):
    cutoff = frame.get_column("timestamp").max() - timedelta(days=days)
    return frame.filter(pl.col("timestamp") < cutoff), frame.filter(pl.col("timestamp") >= cutoff)

train, test = last_days(frame, split_days)
# The validation window of features.split_shapes: as long as the test's, but no larger a share
# of the training events than the test's share of all events.
stamps = train.get_column("timestamp")
window = test.get_column("timestamp").max() - test.get_column("timestamp").min()
share = test.height / (train.height + test.height)
cutoff = max(stamps.max() - window, stamps.quantile(1.0 - share, interpolation="higher"))
inner = train.filter(pl.col("timestamp") < cutoff)

def matrix(part):
    members = part.get_column("member_id").unique(maintain_order=True)
    items = part.get_column("item_id").unique(maintain_order=True)
    unseen = catalog.filter(~catalog.is_in(items.implode())).unique(maintain_order=True)
    items = pl.concat([items, unseen])
    codes = part.select(
        pl.col("member_id").replace_strict(members, pl.int_range(len(members), eager=True)),
        pl.col("item_id").replace_strict(items, pl.int_range(len(items), eager=True)),
        pl.col("event").replace_strict(weights, return_dtype=pl.Float64),
    )
    summed = sp.csr_matrix(
        (codes["event"].to_numpy(), (codes["member_id"].to_numpy(), codes["item_id"].to_numpy())),
        shape=(len(members), len(items)), dtype=np.float64,
    )
    return summed.astype(np.float32)

matrices = {"validation-train": matrix(inner), "train": matrix(train), "all": matrix(frame)}
del frame, train, test, inner
fits = []

def timed(model, part, call):
    started = time.perf_counter()
    call()
    fits.append({"model": model, "matrix": part, "seconds": time.perf_counter() - started})

for part, user_items in matrices.items():
    timed("popular", part, lambda: np.asarray((user_items > 0).sum(axis=0)).ravel())
    knn = params["item_knn"]
    neighbours = (
        CosineRecommender(K=knn["neighbors"]) if knn["similarity"] == "cosine"
        else BM25Recommender(K=knn["neighbors"], K1=knn["bm25_k1"], B=knn["bm25_b"])
    )
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        timed("item_knn", part, lambda: neighbours.fit(user_items, show_progress=False))
    als = params["als"]
    factorisation = AlternatingLeastSquares(
        factors=als["factors"], regularization=als["regularization"], alpha=als["alpha"],
        dtype=np.float32, iterations=als["iterations"], calculate_training_loss=False,
        random_state=als["random_state"],
    )
    with threadpool_limits(1, "blas"):
        timed("als", part, lambda: factorisation.fit(user_items, show_progress=False))

full = matrices["all"]
indptr = np.load(artifact / "histories" / "indptr.npy", mmap_mode="r")
data = np.load(artifact / "histories" / "data.npy", mmap_mode="r")
out.write_text(json.dumps({
    "fits": fits,
    "shapes": {part: list(m.shape) + [int(m.nnz)] for part, m in matrices.items()},
    "same_matrix_as_artifact": bool(
        list(full.shape) == [manifest["n_members"], manifest["n_items"]]
        and int(indptr[-1]) == full.nnz
        and np.isclose(float(np.sum(data, dtype=np.float64)), float(full.sum(dtype=np.float64)))
    ),
}))
"""


@dataclass
class Run:
    """One product run beside its reference."""

    product: ChildResult
    reference: ChildResult
    stages: dict[str, float]
    stage_peaks: dict[str, int]
    fits: list[dict[str, Any]]
    shapes: dict[str, list[int]]
    evaluated_members: int
    same_matrix: bool
    load_average: tuple[float, float]
    #: The LISTS_PROGRAM child: its output (seconds, members, depth, model) and its result.
    lists: dict[str, Any]
    lists_child: ChildResult

    @property
    def reference_s(self) -> float:
        return sum(fit["seconds"] for fit in self.fits)

    @property
    def own_fits_s(self) -> float:
        """The same fits as timed inside ``recsys train`` (wrappers included): when they differ
        much from the reference, the machine's load changed between the two children."""
        return sum(seconds for stage, seconds in self.stages.items() if stage.startswith("fit "))

    @property
    def ratio(self) -> float:
        return self.product.wall_s / self.reference_s


@dataclass
class Report:
    """Every repetition, and the medians the verdict is based on."""

    runs: list[Run] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return statistics.median(run.product.wall_s for run in self.runs)

    @property
    def reference_s(self) -> float:
        return statistics.median(run.reference_s for run in self.runs)

    @property
    def ratio(self) -> float:
        return statistics.median(run.ratio for run in self.runs)

    @property
    def peak_rss_bytes(self) -> int:
        return max(run.product.peak_rss_bytes for run in self.runs)

    @property
    def meets_ratio(self) -> bool:
        return self.ratio <= RATIO_TARGET

    @property
    def meets_rss(self) -> bool:
        return self.peak_rss_bytes <= RSS_TARGET_BYTES


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


def train_arguments(store: Path, artifact: Path, max_eval_members: int) -> list[str]:
    return [
        "train",
        *("-i", str(store / "interactions.parquet")),
        *("--items", str(store / "items.parquet"), "--members", str(store / "members.parquet")),
        *("--split", f"last-days:{SPLIT_DAYS}", "--models", MODELS),
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


def fit_seconds(run: Run, model: str) -> float:
    return sum(fit["seconds"] for fit in run.fits if fit["model"] == model)


def command_line(args: argparse.Namespace) -> str:
    sizes = (
        f"--store {args.store}"
        if args.store
        else f"--members {args.members} --items {args.items} --events {args.events}"
    )
    repeat = f" --repeat {args.repeat}" if args.repeat != 1 else ""
    return (
        f"uv run python benchmarks/train.py {sizes} "
        f"--max-eval-members {args.max_eval_members}{repeat}"
    )


def store_sizes(store: Path) -> str:
    counts = json.loads((store / "store.json").read_text())["summary"]
    return f"{counts['members']:,} members, {counts['items']:,} items, {counts['events']:,} events"


def gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def render_table(report: Report) -> str:
    """The per-stage breakdown of the median run (by product wall time) as a Markdown table."""
    runs = sorted(report.runs, key=lambda run: run.product.wall_s)
    median = runs[len(runs) // 2]
    lines = ["| stage | seconds | share of wall | peak RSS by then |", "|---|---:|---:|---:|"]
    for stage, seconds in median.stages.items():
        peak = median.stage_peaks.get(stage)
        lines.append(
            f"| {stage} | {seconds:.1f} | {seconds / median.product.wall_s:.0%} | "
            f"{gb(peak) if peak else '-'} |"
        )
    lines.append(f"| **total (wall)** | **{median.product.wall_s:.1f}** | 100% | |")
    return "\n".join(lines)


def lists_row(runs: list[Run]) -> str:
    """The precomputed lists' cost, measured on the run's model artifact after it."""
    first = runs[0].lists
    seconds = statistics.median(run.lists["seconds"] for run in runs)
    peak = max(run.lists_child.peak_rss_bytes for run in runs)
    return (
        f"{seconds:.1f} s for {first['members']:,} members by {first['model']} "
        f"(peak RSS {gb(peak)})"
    )


def render_section(report: Report, args: argparse.Namespace, store: Path) -> str:
    ratio_ok = "yes" if report.meets_ratio else "**no**"
    rss_ok = "yes" if report.meets_rss else "**no**"
    same_matrix = "yes" if all(run.same_matrix for run in report.runs) else "**no**"
    runs = report.runs
    reference_rows = "\n".join(
        f"| reference: {model} fits (x3) | "
        f"{statistics.median(fit_seconds(run, model) for run in runs):.1f} s |"
        for model in ("als", "item_knn", "popular")
    )
    per_run = ", ".join(
        f"{run.product.wall_s:.0f} s / {run.reference_s:.0f} s = {run.ratio:.2f}x "
        f"(fits inside train {run.own_fits_s:.0f} s, load average {run.load_average[0]:.1f})"
        for run in runs
    )
    overhead = statistics.median(run.product.wall_s - run.own_fits_s for run in runs)
    # The same fits timed in two processes differ (noise, and implicit scaling the matrix by
    # alpha itself in the reference); this ratio counts only train's overhead.
    steady_ratio = (overhead + report.reference_s) / report.reference_s
    shapes = "; ".join(
        f"{part} {shape[0]:,} x {shape[1]:,}, {shape[2]:,} nonzeros"
        for part, shape in runs[0].shapes.items()
    )
    return f"""{SECTION_TITLE}

`recsys train` with popular, item_knn and ALS (`--trials 1`: each model fit once on the
validation-train part, once on the whole training split for the test figures, and once on all
interactions for the model artifact, the refit), evaluation on a member sample, FAISS index and
model artifact,
against the raw library fits it contains (`implicit` ALS and BM25/cosine item-kNN fits and
popularity counting on the same three matrices: validation-train, train, all; with the run's
own parameters),
timed in a separate child process in the same benchmark run. The members' precomputed serving
lists are left out (`--list-depth 0`): they are a cache for serving, timed on their own on the
run's model artifact and reported below. Targets: at most {RATIO_TARGET}x the raw fits and a
peak RSS of at most {RSS_TARGET_BYTES // 10**9} GB. Timings are medians of
{len(runs)} run(s); the machine was shared with other jobs, so expect a few percent of noise.

| | |
|---|---|
| date | {datetime.now(UTC).date().isoformat()} |
| command | `{command_line(args)}` |
| machine | {machine_description()} |
| sizes | {store_sizes(store)}; split `last-days:{SPLIT_DAYS}`; {shapes} |
| evaluated members | {runs[0].evaluated_members:,} (sample) per evaluation |
| `recsys train` wall time | {report.wall_s:.1f} s (child process, including interpreter start-up) |
| raw library fits | {report.reference_s:.1f} s |
{reference_rows}
| ratio | **{report.ratio:.2f}x** (target {RATIO_TARGET}x) |
| per run: train / fits = ratio | {per_run} |
| overhead: wall minus the fits inside train | {overhead:.1f} s |
| ratio had train's own fits taken the reference's time | {steady_ratio:.2f}x |
| peak RSS of `recsys train` | {gb(report.peak_rss_bytes)} (target {RSS_TARGET_BYTES // 10**9} GB) |
| serving lists (depth {runs[0].lists["depth"]}, not in the run above) | {lists_row(runs)} |
| reference matrix equals the artifact's | {same_matrix} |
| meets the 1.5x target | {ratio_ok} |
| meets the 8 GB target | {rss_ok} |

Time per stage of `recsys train` (exclusive: the fits are not counted again in tuning, for
example); "fit" rows are the product's own fits, wrappers included:

{render_table(report)}
"""


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
