"""Serving commands: ``recsys serve`` starts the API, ``recsys simulate`` replays a test period
against a running one (:mod:`cli.simulator`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.options import ColumnsOption, MaxBadShareOption, PresetOption, load_with_options
from cli.render import console, counting_bar, print_ctr_report
from features.validate import DEFAULT_MAX_BAD_SHARE

__all__ = ["serve", "simulate"]


def serve(
    artifact: Annotated[
        Path | None,
        typer.Option("--artifact", help="Serve this model artifact directory (RECSYS_ARTIFACT)."),
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="Serve a registry version or alias, e.g. models:/member-recsys@champion."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    events_url: Annotated[
        str | None, typer.Option(help="Event store URL (default SQLite under data/serving/).")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI.")] = None,
    poll_seconds: Annotated[
        float | None,
        typer.Option(min=0, help="Check the model artifact's source this often (0: off)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the recommendation API; other settings come from RECSYS_* variables."""
    from serving.server import run_server

    settings = {
        # Absolute, not resolved: a symlink switched to another version must be followed.
        "RECSYS_ARTIFACT": artifact.absolute() if artifact else None,
        "RECSYS_MODEL_URI": model_uri,
        "RECSYS_EVENTS_URL": events_url,
        "RECSYS_TRACKING_URI": tracking_uri,
        "RECSYS_POLL_SECONDS": poll_seconds,
    }
    environment = {name: str(value) for name, value in settings.items() if value is not None}
    run_server(
        host=host, port=port, workers=workers, environment=environment, access_log=access_log
    )


def simulate(
    url: Annotated[str, typer.Option(help="Base URL of a running server.")],
    test_file: Annotated[Path, typer.Option(help="Test-period interactions to replay.")],
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_API_KEY",
            help="Key with the events role (and read, if the server requires one).",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=100, help="List length.")] = 10,
    members: Annotated[
        int | None, typer.Option(min=1, help="Replay at most this many members.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel clients.")] = 8,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replay a test period against a server: recommendations, impressions, clicks and
    purchases of what members really took, then the CTR report (doubles as a load test)."""
    from cli.simulator import members_to_replay
    from cli.simulator import simulate as replay

    test = load_with_options(test_file, preset, columns, max_bad_share).frame
    truths = members_to_replay(test, members)
    with counting_bar("replaying", len(truths)) as bar:
        summary = replay(
            url, truths, api_key=api_key, n=n, concurrency=concurrency, on_progress=bar.to
        )
    result = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"Replay of {test_file} against {url}", show_header=False)
    for key, value in result.items():
        if key == "report":
            continue
        shown = (
            "-" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        )
        table.add_row(key.replace("_", " "), shown)
    console.print(table)
    if summary.report is not None:
        print_ctr_report(summary.report)
