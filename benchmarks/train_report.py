"""What ``benchmarks/train.py`` records of each run, and the "Training" section written from it:
the targets, the medians the verdict is based on, and the Markdown tables."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from child_process import ChildResult
from docs_section import machine_description
from train_programs import SPLIT_DAYS

SECTION_TITLE = "## Training"
#: The targets: wall time at most this multiple of the raw fits, peak RSS at most 4 GB (issue 16;
#: it was 8 GB before the footprint work).
RATIO_TARGET = 1.5
RSS_TARGET_BYTES = 4 * 10**9


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
| meets the {RSS_TARGET_BYTES // 10**9} GB target | {rss_ok} |

Time per stage of `recsys train` (exclusive: the fits are not counted again in tuning, for
example); "fit" rows are the product's own fits, wrappers included:

{render_table(report)}
"""
