"""Serving commands: ``recsys serve`` starts the API, ``recsys simulate`` replays a test period
against a running one (:mod:`cli.simulator`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.options import ColumnsOption, MaxBadShareOption, PresetOption, load_with_options
from cli.render import console, counting_bar, print_ctr_report
from features.errors import ConfigError
from features.validate import DEFAULT_MAX_BAD_SHARE

if TYPE_CHECKING:
    from features.synthetic.campaign import CampaignEffect

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
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            help="Serve HTTPS with this PEM certificate (and its chain); needs --ssl-keyfile "
            "(RECSYS_SSL_CERTFILE)."
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option(
            help="The certificate's PEM private key (RECSYS_SSL_KEYFILE; the password of an "
            "encrypted one in RECSYS_SSL_KEYFILE_PASSWORD)."
        ),
    ] = None,
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
        "RECSYS_SSL_CERTFILE": ssl_certfile.absolute() if ssl_certfile else None,
        "RECSYS_SSL_KEYFILE": ssl_keyfile.absolute() if ssl_keyfile else None,
    }
    environment = {name: str(value) for name, value in settings.items() if value is not None}
    run_server(
        host=host, port=port, workers=workers, environment=environment, access_log=access_log
    )


def simulate(
    url: Annotated[str, typer.Option(help="Base URL of a running server.")],
    test_file: Annotated[
        Path | None,
        typer.Option(help="Test-period interactions to replay (or --campaign)."),
    ] = None,
    campaign: Annotated[
        Path | None,
        typer.Option(
            help="Replay this campaign instead: the <stem>.manifest.json of a recsys campaign "
            "export into the server's event store; its members react with the planted "
            "rates below and the server's uplift report is checked against them."
        ),
    ] = None,
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
    treated_rate: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="--campaign: chance a treated member buys a sent item."
        ),
    ] = None,
    base_rate: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="--campaign: chance a held-out member buys one."),
    ] = None,
    other_rate: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="--campaign: chance anyone buys an unsent item."),
    ] = None,
    window_days: Annotated[
        float | None,
        typer.Option(min=0.0, help="--campaign: days after the send that purchases fall in."),
    ] = None,
    seed: Annotated[int, typer.Option(help="--campaign: seed of the reactions.")] = 0,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replay a test period against a server: recommendations, impressions, clicks and
    purchases of what members really took, then the CTR report (doubles as a load test). With
    --campaign, replay a campaign instead: planted purchases after its sends, then its uplift
    report against the planted truth (unset rates: the generator's, docs/campaigns.md)."""
    if (test_file is None) == (campaign is None):
        raise ConfigError("give --test-file (a test period) or --campaign (a manifest): one")
    if campaign is not None:
        from features.synthetic.campaign import CampaignEffect

        given = {
            "base_rate": base_rate, "treated_rate": treated_rate, "other_rate": other_rate,
            "window_days": window_days,
        }  # fmt: skip
        effect = CampaignEffect(
            **{name: value for name, value in given.items() if value is not None}, seed=seed
        )
        _replay_campaign(url, campaign, effect, api_key, concurrency, as_json)
        return
    from cli.simulator import members_to_replay
    from cli.simulator import simulate as replay

    assert test_file is not None
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


def _replay_campaign(
    url: str,
    manifest: Path,
    effect: CampaignEffect,
    api_key: str | None,
    concurrency: int,
    as_json: bool,
) -> None:
    from cli.campaign_replay import campaign_members, replay_campaign
    from cli.campaign_report import print_report

    _, member_ids = campaign_members(manifest)
    with counting_bar("replaying", len(member_ids)) as bar:
        replay = replay_campaign(
            url, manifest, effect, api_key=api_key, concurrency=concurrency, on_progress=bar.to
        )
    if as_json:
        typer.echo(json.dumps(replay.as_dict()))
        return
    console.print(
        f"campaign {replay.campaign_id}: {replay.treatment:,} treated and {replay.holdout:,} "
        f"held-out members replayed ({replay.skipped:,} skipped: a later campaign or no items), "
        f"{replay.purchases:,} purchases posted, {replay.failures:,} failed requests, "
        f"{replay.seconds:.1f} s"
    )
    if replay.report is None:
        console.print("the server has no report of this campaign")
        return
    print_report(replay.report)
    for metric, check in replay.planted().items():
        interval = (
            f"[{check['low']:+.4f}, {check['high']:+.4f}]" if check["low"] is not None else "-"
        )
        verdict = "holds" if check["holds"] else "MISSES"
        console.print(
            f"{metric}: planted uplift {check['planted']:+.4f}, reported "
            f"{check['estimate']:+.4f} {interval}: the interval {verdict} the truth"
        )
