"""``recsys campaign report ID``: a campaign's treatment against its holdout (docs/campaigns.md,
"Uplift report"), from the ledger and purchases in the event store, as a table, JSON or an
HTML page with the uplift plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.export import event_store_session
from cli.options import open_artifact
from cli.render import console, err_console
from features.errors import ConfigError
from training.uplift import DEFAULT_WINDOW_DAYS

__all__ = ["print_report", "report"]


def report(
    campaign_id: Annotated[
        str | None,
        typer.Argument(help="The campaign id its export printed (or --latest FAMILY)."),
    ] = None,
    latest: Annotated[
        str | None,
        typer.Option(help="Report the newest campaign of this family instead of an id."),
    ] = None,
    window_days: Annotated[
        float,
        typer.Option(help="Days after each send that purchases count (above 0)."),
    ] = DEFAULT_WINDOW_DAYS,
    artifact: Annotated[
        Path | None,
        typer.Option(
            help="Model artifact whose catalog prices the purchases (revenue) and whose "
            "member profiles give the segment and tier breakdowns."
        ),
    ] = None,
    purchases: Annotated[
        Path | None,
        typer.Option(
            help="Purchases the event store lacks (e.g. the till's orders): an interactions "
            "file (CSV/Parquet, the data contract's columns, with price and quantity)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write the report's HTML page (with its plot).")
    ] = None,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="Event store holding the ledger and the purchase events (default: the one "
            "serving uses, SQLite under data/serving/).",
        ),
    ] = None,
) -> None:
    """Conversion (any purchase, a sent item), revenue per member and offer redemption of the
    treated members against the holdout, with absolute and relative uplift and 95% intervals,
    overall and per segment and tier."""
    from serving.campaign_uplift import campaign_report
    from training.uplift_page import uplift_page

    if (campaign_id is None) == (latest is None):
        raise ConfigError("give a campaign id or --latest FAMILY (one of the two)")
    opened = open_artifact(artifact) if artifact is not None else None
    extra = _load_purchases(purchases) if purchases is not None else None
    with event_store_session(events_url, create=True) as store:
        assert store is not None  # created when missing
        if latest is not None:
            campaign_id = _newest_of(store.campaigns(), latest)
        assert campaign_id is not None
        result = campaign_report(
            store, campaign_id, window_days=window_days, artifact=opened, purchases=extra
        )
        known = [row["campaign_id"] for row in store.campaigns()] if result is None else []
    if result is None:
        listed = ", ".join(known[-10:]) or "none"
        raise ConfigError(
            f"campaign {campaign_id!r} is not in the ledger of this event store (--events-url); "
            f"latest campaigns there: {listed}"
        )
    body = result.as_dict()
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(uplift_page(body), encoding="utf-8")
        err_console.print(f"report page written to {html}")
    if as_json:
        console.print_json(json.dumps(body))
    else:
        print_report(body)


def _newest_of(campaigns: list[dict[str, Any]], family: str) -> str:
    """The id of ``family``'s newest campaign (by its first send) in the ledger."""
    ids = [row["campaign_id"] for row in campaigns if row["family"] == family]
    if not ids:
        families = sorted({row["family"] for row in campaigns}) or ["none"]
        raise ConfigError(
            f"--latest {family}: no campaign of this family in the ledger of this event store "
            f"(--events-url); families there: {', '.join(families)}"
        )
    return ids[-1]  # the ledger lists campaigns oldest first


def _load_purchases(path: Path) -> Any:
    from cli.options import load_with_options

    return load_with_options(path, None, None, 0.0).frame


def print_report(body: dict[str, Any]) -> None:
    from training.uplift_page import UPLIFT_HEADER, report_slices, uplift_rows

    overall = body["overall"]
    console.print(
        f"campaign {body['campaign_id']} ({body['family']}): "
        f"{overall['treatment']['members']:,} treated, {overall['holdout']['members']:,} holdout; "
        f"purchases within {body['window_days']:g} days of each send"
    )
    table = Table()
    for position, name in enumerate(UPLIFT_HEADER):
        table.add_column(name, no_wrap=position == 2)  # the figure's name
    for row in uplift_rows(report_slices(body)):
        table.add_row(*row)
    console.print(table)
    treated = overall["treatment"]
    if treated["offers"]:
        console.print(
            f"offers: {treated['redeemed']:,} of {treated['offers']:,} redeemed (bought an "
            "item sent with the offer)"
        )
