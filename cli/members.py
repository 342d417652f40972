"""``recsys members score``: churn risk and expected value of every member, as of a date.

The models, their windows and their checks are :mod:`training.member_models`; this command loads
the files the way every command does, writes one row per member and ``members_metrics.json``
beside it, and prints how the models did on the last complete window, so that an analyst sees at
once whether the ranking means anything before a campaign is built on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer
from rich.table import Table

from cli.options import (
    ColumnsOption,
    InteractionsOption,
    MaxBadShareOption,
    PresetOption,
    load_with_options,
    write_table,
)
from cli.render import console, err_console, print_validation_report, timed_status
from features.errors import ConfigError
from features.pseudonyms import KEY_VARIABLE, MemberPseudonyms
from features.validate import DEFAULT_MAX_BAD_SHARE, ValidatedTable, load_items, load_members
from training.config import DEFAULT_HORIZON_DAYS

if TYPE_CHECKING:
    from training.member_models import MemberScores

__all__ = ["app", "print_member_scores"]

app = typer.Typer(
    name="members",
    help="Churn risk and expected value of every member (recsys members score); erasure on "
    "request (recsys members forget).",
    no_args_is_help=True,
)


@app.command("score")
def score(
    interactions: InteractionsOption,
    out: Annotated[
        Path,
        typer.Option(help="One row per member (.parquet or .csv); members_metrics.json beside it."),
    ],
    horizon_days: Annotated[
        int,
        typer.Option(
            min=1, help="H: churn risk is the probability of no purchase in the next H days."
        ),
    ] = DEFAULT_HORIZON_DAYS,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            help="Score from the events before this date (default: the day after the last event)."
        ),
    ] = None,
    members: Annotated[
        Path | None,
        typer.Option(
            help="Member table (joined_at, tier, region, birth_date): its members are scored too."
        ),
    ] = None,
    items: Annotated[Path | None, typer.Option(help="Item catalog (categories).")] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    seed: Annotated[int, typer.Option(help="Seed of sampling and bootstrap intervals.")] = 42,
) -> None:
    """Score every member: churn risk and band, expected purchases and spend over the horizon,
    with the segment, tier and RFM figures they go with."""
    from training.artifact import MEMBERS_METRICS_FILE
    from training.member_models import MemberModelConfig, score_members

    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: use a .parquet or .csv file")
    member_table = _loaded(load_members, members)
    item_table = _loaded(load_items, items)
    with tempfile.TemporaryDirectory(prefix="recsys-members-") as scratch:
        events = _validated_scan(
            load_with_options(interactions, preset, columns, max_bad_share), Path(scratch)
        )
        with timed_status(f"scoring members (H = {horizon_days} days)"):
            scores = score_members(
                events, as_of=as_of, horizon_days=horizon_days, members=member_table,
                items=item_table, config=MemberModelConfig(seed=seed),
            )  # fmt: skip
    write_table(scores.frame, out)
    metrics_path = out.with_name(MEMBERS_METRICS_FILE)
    metrics_path.write_text(json.dumps(scores.metrics, indent=2, default=str))
    print_member_scores(scores)
    console.print(
        f"Scores of {scores.frame.height:,} members written to {out}; figures in {metrics_path}"
    )


def _validated_scan(loaded: ValidatedTable, scratch: Path) -> pl.LazyFrame:
    """The validated events as a scan of a scratch Parquet file, the loaded frame released.

    Scoring reads the events once per window date and never needs them whole, so holding the
    validated frame through it would add its size to the peak (2 GB at 20M events); spilled,
    the peak is the larger of loading and scoring, not their sum.
    """
    print_validation_report(loaded.report)
    path = scratch / "interactions.parquet"
    loaded.frame.write_parquet(path)
    return pl.scan_parquet(path)


def _loaded(loader: Any, path: Path | None) -> Any:
    if path is None:
        return None
    table = loader(path)
    print_validation_report(table.report)
    return table.frame


def print_member_scores(scores: MemberScores) -> None:
    """The test window's figures of every churn and value model, then what the scores mean."""
    metrics = scores.metrics
    churn, value = metrics["churn"], metrics["value"]
    table = Table(
        title=f"Churn on the last complete window (H = {metrics['horizon_days']} days); "
        "* = chosen on validation"
    )
    for label in ("model", "ROC AUC [95%]", "PR AUC", "Brier", "top-decile lift"):
        table.add_column(label, justify="left" if label == "model" else "right")
    for name, figures in churn["test"].items():
        low, high = figures["roc_auc_ci"] if figures.get("roc_auc_ci") else (None, None)
        auc = _number(figures.get("roc_auc"))
        interval = f"{auc} [{_number(low)}, {_number(high)}]" if low is not None else auc
        table.add_row(
            f"{name} *" if name == churn["chosen"] else name, interval,
            _number(figures.get("pr_auc")), _number(figures.get("brier")),
            _number(figures.get("top_decile_lift"), 2),
        )  # fmt: skip
    console.print(table)
    table = Table(title="Expected value on the last complete window; * = chosen on validation")
    for label in ("model", "purchases MAE", "purchases RMSE", "spend MAE", "spend RMSE"):
        table.add_column(label, justify="left" if label == "model" else "right")
    for name, figures in value["test"].items():
        table.add_row(
            f"{name} *" if name == value["chosen"] else name,
            *(_number(figures.get(key), 3) for key in (
                "purchases_mae", "purchases_rmse", "spend_mae", "spend_rmse")),
        )  # fmt: skip
    console.print(table)
    for failure in metrics.get("failed", []):
        err_console.print(
            f"[yellow]{failure['model']} failed:[/] {failure['reason']}", highlight=False
        )
    if not churn["informative"]:
        err_console.print(
            f"[bold yellow]churn scores are uninformative:[/] {churn['reason']}; every member "
            "gets the base rate and the band 'uninformative'",
            highlight=False,
        )


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("forget")
def forget(
    member_ids: Annotated[
        list[str] | None, typer.Argument(help="Ids of the members to erase.", show_default=False)
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="A file of member ids, one per line (for many at once)."),
    ] = None,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="The event store the servers share (default: RECSYS_EVENTS_URL, else "
            "serving's SQLite file data/serving/events.db, created when missing).",
        ),
    ] = None,
) -> None:
    """Erase members on request: delete their events and campaign sends from the event store,
    unlink the lists served to them, and record the erasure, so that every server on the store
    answers them as members never seen, exports leave them out, and the next recsys train
    drops their rows. Recorded in the audit log. With $RECSYS_MEMBER_ID_KEY set (pseudonymised
    ids), the raw ids given are erased as their pseudonyms, which the store and the trainings
    hold."""
    from cli.privacy import audited_command
    from serving.erasure import forget_members

    wanted = [*(member_ids or []), *(_ids_in(from_file) if from_file is not None else [])]
    if not wanted:
        raise ConfigError("name the members to erase: recsys members forget ID... or --from-file")
    if os.environ.get(KEY_VARIABLE):  # the store and the trainings hold pseudonyms only
        wanted = MemberPseudonyms.from_environment(needed_by="recsys members forget").of_all(wanted)
    with audited_command(events_url, "erase", target=_listed(wanted)) as (store, audit):
        done = forget_members(store, wanted, audit.actor)
        audit.detail.update(
            members=len(done),
            events_deleted=sum(erasure.events_deleted for erasure in done),
            sends_deleted=sum(erasure.sends_deleted for erasure in done),
        )
    repeats = sum(not erasure.first for erasure in done)
    console.print(
        f"erased {len(done):,} member(s)"
        + (f" ({repeats:,} erased before)" if repeats else "")
        + f": {audit.detail['events_deleted']:,} events and {audit.detail['sends_deleted']:,} "
        "campaign sends deleted. Servers on this store answer them as members never seen "
        "(within a second), exports leave them out, and the next recsys train drops their rows."
    )


def _ids_in(path: Path) -> list[str]:
    """The non-empty lines of ``path``, stripped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--from-file {path}: cannot read it ({error})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _listed(member_ids: list[str], shown: int = 20) -> str:
    """The members an audit entry names: every id, or the first ``shown`` and how many more."""
    unique = list(dict.fromkeys(member_ids))
    more = len(unique) - shown
    return ", ".join(unique[:shown]) + (f" and {more:,} more" if more > 0 else "")
