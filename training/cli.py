"""The ``recsys`` command line (DESIGN section 6).

Commands are thin: they parse options, call the library, and print. Errors a user can cause
(:class:`~features.errors.RecsysError`) are printed as one message and exit with status 2, never
as a traceback.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features import columns as col
from features.errors import ConfigError, RecsysError, TooManyBadRowsError
from features.generate import StoreConfig, StoreSummary, generate_store
from features.ingest import parse_column_mapping
from features.members import compute_member_profiles, segment_summary
from features.presets import PRESETS, get_preset
from features.validate import (
    DEFAULT_MAX_BAD_SHARE,
    ValidatedTable,
    ValidationReport,
    load_interactions,
    load_members,
)

app = typer.Typer(
    name="recsys",
    help="member-recsys: recommendations, bundles and segments for membership programs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

_MAPPABLE = (
    *col.REQUIRED_INTERACTION_COLUMNS,
    *col.OPTIONAL_INTERACTION_COLUMNS,
    *col.CARRIED_ITEM_COLUMNS,
)

InteractionsOption = Annotated[
    Path, typer.Option("--interactions", "-i", help="Interactions file (CSV or Parquet).")
]
PresetOption = Annotated[
    str | None,
    typer.Option(help=f"Column mapping and rules of a known source: {', '.join(sorted(PRESETS))}."),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Map your columns to the contract, e.g. member_id=CustomerID,item_id=StockCode.",
    ),
]
MaxBadShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Stop when more than this share of rows is invalid (a preset's known exclusions "
        "do not count).",
    ),
]


def load_with_options(
    interactions: Path,
    preset: str | None,
    columns: str | None,
    max_bad_share: float,
    quarantine: Path | None = None,
) -> ValidatedTable:
    """Load interactions the way every command does, from the shared CLI options."""
    return load_interactions(
        interactions,
        mapping=parse_column_mapping(columns, _MAPPABLE),
        preset=get_preset(preset),
        max_bad_share=max_bad_share,
        quarantine_path=quarantine,
    )


def print_validation_report(report: ValidationReport) -> None:
    """The human summary of a load: counts that add up, then the reasons."""
    table = Table(title=f"Validation of {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row("duplicates (exact repeats)", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    table.add_row("  of which expected exclusions", f"{report.expected_exclusions:,}")
    table.add_row("bad share (cap)", f"{report.bad_share:.2%} ({report.max_bad_share:.2%})")
    console.print(table)
    if report.reasons:
        reasons = Table(title="Quarantine reasons")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in report.reasons.items():
            reasons.add_row(reason, f"{count:,}")
        console.print(reasons)
        console.print(f"Quarantined rows with their reasons: {report.quarantine_path}")


@app.command()
def validate(
    interactions: InteractionsOption,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default data/quarantine/<file>.csv)."),
    ] = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check an interactions file row by row and print what was read, accepted and rejected."""
    try:
        loaded = load_with_options(interactions, preset, columns, max_bad_share, quarantine)
    except TooManyBadRowsError as exc:
        if as_json:
            typer.echo(json.dumps({**exc.report, "error": str(exc)}))
        raise
    if as_json:
        typer.echo(json.dumps(loaded.report.to_dict()))
    else:
        print_validation_report(loaded.report)


def print_segment_summary(summary: pl.DataFrame) -> None:
    """Members per lifecycle segment and value tier, as analysts read them."""
    table = Table(title="Member segments")
    for name in ("group", "name", "members", "share", "mean monetary"):
        table.add_column(name, justify="left" if name in ("group", "name") else "right")
    for row in summary.iter_rows(named=True):
        mean = row["mean_monetary"]
        table.add_row(
            row["group"],
            row["name"],
            f"{row['members']:,}",
            f"{row['share']:.1%}",
            "-" if mean is None else f"{mean:,.2f}",
        )
    console.print(table)


def _write_table(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ConfigError(f"--out {path}: use a .csv or .parquet file name")


@app.command()
def segments(
    interactions: InteractionsOption,
    members: Annotated[
        Path | None,
        typer.Option(help="Member table (joined_at, tier) to include members without events."),
    ] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Reference date of the profiles (default: the last event)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write one profile row per member (.csv or .parquet).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """RFM scores, lifecycle segments and value tiers of every member."""
    loaded = load_with_options(interactions, preset, columns, max_bad_share)
    member_table = load_members(members).frame if members else None
    profiles = compute_member_profiles(loaded.frame, reference_time=as_of, members=member_table)
    summary = segment_summary(profiles)
    if out:
        _write_table(profiles, out)
    if as_json:
        typer.echo(json.dumps(summary.to_dicts()))
        return
    print_segment_summary(summary)
    if out:
        console.print(f"Profiles of {profiles.height:,} members written to {out}")


def _generate_with_progress(config: StoreConfig, out: Path) -> StoreSummary:
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("events", total=config.events)
        return generate_store(
            config, out, on_progress=lambda written: progress.update(task, completed=written)
        )


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory to write the store into.")],
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = StoreConfig.members,
    items: Annotated[int, typer.Option(min=1, help="Number of catalog items.")] = StoreConfig.items,
    events: Annotated[
        int, typer.Option(min=1, help="Number of interactions.")
    ] = StoreConfig.events,
    seed: Annotated[
        int, typer.Option(help="Random seed; same seed, same store.")
    ] = StoreConfig.seed,
) -> None:
    """Write a synthetic store: interactions, items, members and the planted-bundle truth."""
    summary = _generate_with_progress(
        StoreConfig(members=members, items=items, events=events, seed=seed), out
    )
    console.print(summary.describe())


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory of the demo store.")] = Path("data/demo"),
    members: Annotated[int, typer.Option(min=1)] = StoreConfig.members,
    items: Annotated[int, typer.Option(min=1)] = StoreConfig.items,
    events: Annotated[int, typer.Option(min=1)] = StoreConfig.events,
    seed: Annotated[int, typer.Option()] = StoreConfig.seed,
) -> None:
    """Generate the demo store, validate it and segment its members."""
    config = StoreConfig(members=members, items=items, events=events, seed=seed)
    summary = _generate_with_progress(config, out)
    console.print(summary.describe())
    loaded = load_interactions(summary.interactions_path)
    print_validation_report(loaded.report)
    member_table = load_members(summary.members_path).frame
    profiles = compute_member_profiles(loaded.frame, members=member_table)
    print_segment_summary(segment_summary(profiles))


def main() -> None:
    """Console-script entry point: user errors become one message and exit status 2."""
    try:
        app()
    except RecsysError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
