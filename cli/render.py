"""What the ``recsys`` commands print: the consoles, the tables and the progress bars.

Results go to standard output (``console``) and progress, warnings and errors to standard
error (``err_console``), so that a command's output can be piped or parsed while it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from features.split_shapes import shape_numbers
from features.validate import ValidationReport

__all__ = [
    "NEXT_BASKET_SHORT_NAMES",
    "SEGMENT_GROUPS",
    "SHORT_NAMES",
    "CountingBar",
    "console",
    "counting_bar",
    "err_console",
    "metric_table",
    "print_ctr_report",
    "print_failures",
    "print_model_table",
    "print_protocol",
    "print_rules_quality",
    "print_segment_summary",
    "print_validation_report",
    "step_bar",
    "timed_status",
]

console = Console()
err_console = Console(stderr=True)

#: Metric columns of the CLI tables, with headers short enough for an 80-column terminal.
SHORT_NAMES = {
    "precision@10": "P@10",
    "recall@10": "R@10",
    "ndcg@10": "NDCG@10",
    "map": "MAP",
    "hit_rate@10": "HR@10",
    "coverage@10": "cov@10",
}
#: The columns of a next-basket run (``--target next-basket``): its recall split into parts.
NEXT_BASKET_SHORT_NAMES = {
    "recall@10": "R@10",
    "repeat_recall@10": "repeat R@10",
    "explore_recall@10": "explore R@10",
    "ndcg@10": "NDCG@10",
    "phr@10": "PHR@10",
    "coverage@10": "cov@10",
}


class CountingBar:
    """A running count: the library reports either a running total or each step.

    On a terminal it drives a rich bar; elsewhere (a log, a pipe, CI) a bar draws nothing, so
    it prints a plain line at most every ``PLAIN_EVERY_SECONDS`` and one when it ends."""

    def __init__(self, label: str, total: int, progress: Progress | None) -> None:
        self._label, self._total, self._progress = label, total, progress
        self._task = progress.add_task(label, total=total) if progress is not None else None
        self._done = 0
        self._started = self._printed = time.monotonic()

    def to(self, done: int) -> None:
        """Show ``done`` units finished in all."""
        self._done = done
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)
        elif time.monotonic() - self._printed >= PLAIN_EVERY_SECONDS:
            self._print_plain()

    def advance(self, step: int) -> None:
        """Add ``step`` finished units."""
        self.to(self._done + step)

    def _print_plain(self) -> None:
        self._printed = time.monotonic()
        elapsed = self._printed - self._started
        _plain_line(f"{self._label}: {self._done:,} of {self._total:,} ({elapsed:.1f} s)")

    def finish(self) -> None:
        """The closing line of a plain count (a bar just disappears)."""
        if self._progress is None:
            self._print_plain()


#: Plain progress lines of a long count, when output is not a terminal: one per this long.
PLAIN_EVERY_SECONDS = 10.0


def _plain_line(text: str) -> None:
    """One line of a log, never wrapped (a pipe's console is 80 columns wide)."""
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def counting_bar(label: str, total: int) -> Iterator[CountingBar]:
    """A bar of ``total`` units on standard error, gone when the block ends; plain timed
    lines instead when standard error is not a terminal."""
    if not err_console.is_terminal:
        bar = CountingBar(label, total, None)
        yield bar
        bar.finish()
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        yield CountingBar(label, total, progress)


@contextmanager
def step_bar(label: str, steps: int) -> Iterator[Callable[[str], None]]:
    """A bar of ``steps`` named steps on standard error; calling what it yields with a
    message finishes a step and shows the message.

    When standard error is not a terminal (a log), a bar draws nothing: each step is then a
    plain line ``label: message (seconds)`` printed when it ends, the time being the step's
    own, and a last line gives the total, so a log shows where the time went."""
    if err_console.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task(label, total=steps)
            yield lambda message: bar.update(task, description=message, advance=1)
        return
    started = time.monotonic()
    current: list[tuple[str, float]] = []  # the step running now and when it began

    def end_step() -> None:
        if current:
            message, began = current.pop()
            _plain_line(f"{label}: {message} ({time.monotonic() - began:.1f} s)")

    def advance(message: str) -> None:
        end_step()
        current.append((message, time.monotonic()))

    try:
        yield advance
    finally:
        end_step()
    _plain_line(f"{label}: done in {time.monotonic() - started:.1f} s")


@contextmanager
def timed_status(message: str) -> Iterator[None]:
    """A spinner with ``message`` on a terminal; elsewhere a plain line with the time taken
    when the block ends."""
    if err_console.is_terminal:
        with err_console.status(message):
            yield
        return
    started = time.monotonic()
    yield
    _plain_line(f"{message} ({time.monotonic() - started:.1f} s)")


def print_validation_report(report: ValidationReport) -> None:
    """The human summary of a load: counts that add up, then the reasons."""
    table = Table(title=f"Validation of {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row(f"duplicates ({report.duplicate_kind})", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    table.add_row("  of which expected exclusions", f"{report.expected_exclusions:,}")
    table.add_row("bad share (cap)", f"{report.bad_share:.2%} ({report.max_bad_share:.2%})")
    console.print(table)
    for names, why in (
        (report.dropped_personal, "personal data"),
        (report.dropped_unused, "unused"),
    ):
        if names:
            console.print(
                f"Columns dropped unread ({why}): {', '.join(names)}", markup=False, highlight=False
            )
    if report.reasons:
        reasons = Table(title="Quarantine reasons")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in report.reasons.items():
            reasons.add_row(reason, f"{count:,}")
        console.print(reasons)
        console.print(f"Quarantined rows with their reasons: {report.quarantine_path}")


#: How the segment table names its groups: two of them share bronze to platinum, so each says
#: where it comes from.
SEGMENT_GROUPS = {
    "segment": "lifecycle segment",
    "value_tier": "value tier (computed: spend rank)",
    "tier": "tier (declared: members file)",
}


def print_segment_summary(summary: pl.DataFrame, as_of: datetime | None = None) -> None:
    """Members per lifecycle segment, value tier and declared tier, as analysts read them.

    Segments and value tiers are as of a reference time (``as_of``; by default the data's
    last event, the time the model artifact and its exports count segments at, so the counts
    agree). The value tier ranks members by spend in this data; the declared tier is the
    members file's own ``tier`` column: both run bronze to platinum, with different shares."""
    when = f"{as_of:%Y-%m-%d %H:%M}" if as_of is not None else "the data's last event"
    table = Table(title=f"Member segments as of {when}")
    for name in ("group", "name", "members", "share", "mean monetary"):
        table.add_column(name, justify="left" if name in ("group", "name") else "right")
    for row in summary.iter_rows(named=True):
        mean = row["mean_monetary"]
        table.add_row(
            SEGMENT_GROUPS.get(row["group"], row["group"]),
            row["name"],
            f"{row['members']:,}",
            f"{row['share']:.1%}",
            "-" if mean is None else f"{mean:,.2f}",
        )
    console.print(table)


def print_protocol(metrics: dict[str, Any]) -> None:
    """How validation was shaped and what the model artifact serves: the two facts that say
    what the table's figures mean."""
    shape = metrics["protocol"]["validation_shape"]
    how = "inferred from the files" if shape.get("inferred") else "from the split"
    if shape["kind"] == "given":
        how = f"given: {shape['spec']}"
    console.print(
        f"Validation shaped like the test: {shape['kind']} ({how}; {shape_numbers(shape)})"
    )
    if metrics["chosen_because"] != "best on validation":
        console.print(f"Chosen: {metrics['chosen']}, {metrics['chosen_because']}")
    refit = metrics["refit"]
    console.print(
        f"Served models fit on {refit['on']} ({refit['rows']:,} rows, data until "
        f"{refit['data_end']}); the test figures below are the train-only fits'"
    )


def metric_table(
    title: str, *extra_columns: str, short_names: Mapping[str, str] = SHORT_NAMES
) -> Table:
    """A table with a model column, then the short metric columns, then ``extra_columns``."""
    table = Table(title=title)
    table.add_column("model")
    for label in (*short_names.values(), *extra_columns):
        table.add_column(label, justify="right")
    return table


def print_model_table(metrics: dict[str, Any]) -> None:
    """Test figures of every model beside the popularity baseline; the chosen one marked. A
    next-basket run shows its recall split into the repeat and explore parts."""
    primary = metrics["primary_metric"]
    short_names = NEXT_BASKET_SHORT_NAMES if metrics.get("target") == "next-basket" else SHORT_NAMES
    table = metric_table(
        f"Test metrics; * = chosen on validation by {primary}", f"val {primary}",
        short_names=short_names,
    )  # fmt: skip
    for name, values in metrics["models"].items():
        label = f"{name} *" if name == metrics["chosen"] else name
        validation = metrics["validation"].get(name, {}).get(primary)
        shown = "not tuned" if validation is None else f"{validation:.4f}"
        table.add_row(label, *(f"{values[m]:.4f}" for m in short_names), shown)
    console.print(table)


def print_failures(failures: list[dict[str, str]]) -> None:
    """Every failed fit or trial, after the table, so that a missing row is never a mystery."""
    if not failures:
        return
    table = Table(title=f"{len(failures)} failure(s), also in metrics.json 'failed'")
    for column in ("model", "stage", "reason"):
        table.add_column(column)
    for failure in failures:
        table.add_row(failure["model"], failure["stage"], failure["reason"])
    err_console.print(table)


def print_rules_quality(rules: dict[str, Any]) -> None:
    """The mined rules, and how well they proposed the rest of held-out baskets."""
    test = rules["test"]
    line = (
        f"{rules['rules']:,} bundle rules from {rules['baskets']:,} training baskets "
        f"(itemsets in at least {rules['min_count']} baskets)"
    )
    if test["anchors"]:
        hits, n = test["hit_rate"], test["n"]
        line += (
            f"; on {test['test_baskets']:,} test baskets, hit rate@{n} "
            f"{hits['rules_then_popular']:.3f} (rules, then popular) against "
            f"{hits['popular']:.3f} (popular); rules for {test['coverage']:.0%} of items"
        )
    console.print(line)
    funnel = rules.get("funnel")
    if funnel:
        console.print(
            f"Rule funnel (training baskets): {funnel['frequent_pairs']:,} pairs in at least "
            f"{funnel['min_count']} baskets, {funnel['candidates']:,} candidate rules, "
            f"{funnel['not_associated']:,} not associated, {funnel['below_confidence']:,} under "
            f"the confidence floor {funnel['confidence_floor']:.3f}: {funnel['rules']:,} rules"
        )
    if rules.get("why"):
        console.print(f"Few bundle rules: {rules['why']}")


def print_ctr_report(report: dict[str, Any]) -> None:
    """The CTR report as a table, rates with their 95% intervals."""
    table = Table(title=f"CTR by {report['group_by']} (95% Wilson intervals)")
    for name in ("group", "impressions", "clicks", "CTR", "conversions", "conv. rate"):
        table.add_column(name, justify="left" if name == "group" else "right")

    def rate(value: dict[str, Any]) -> str:
        if value["value"] is None:
            return "-"
        return f"{value['value']:.2%} [{value['low']:.2%}, {value['high']:.2%}]"

    for row in [*report["groups"], report["total"]]:
        table.add_row(
            row["key"], f"{row['impressions']:,}", f"{row['clicks']:,}", rate(row["ctr"]),
            f"{row['conversions']:,}", rate(row["conversion_rate"]),
        )  # fmt: skip
    console.print(table)
