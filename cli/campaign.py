"""``recsys campaign``: campaign exports that can be measured (docs/campaigns.md).

``recsys campaign export`` is ``recsys export`` (the same members, kinds and columns) run as one
campaign of a family: a campaign id, suppression lists, a stable holdout group, frequency caps,
a reasons file and a manifest beside the output, and every send recorded in the event store's
ledger, which the next export's caps and the uplift report read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.campaign_report import report
from cli.export import (
    AsOfOption,
    BatchOption,
    CountOption,
    KindOption,
    MembersOption,
    MinChurnRiskOption,
    MinExpectedValueOption,
    ModelOption,
    SegmentOption,
    campaign_members,
    read_member_ids,
    require_kind,
)
from cli.options import ArtifactOption, artifact_pseudonyms, open_artifact
from cli.render import console, counting_bar
from features.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(
    name="campaign",
    help="Campaign exports with holdout groups, suppression, frequency caps and a ledger.",
    no_args_is_help=True,
)


@app.command("export")
def export(
    campaign: Annotated[
        str,
        typer.Option(
            help="Campaign family (e.g. win-back): the holdout draw and the item cap are per "
            "family; each export gets its own campaign id."
        ),
    ],
    artifact: ArtifactOption,
    out: Annotated[
        Path,
        typer.Option(
            help="Output file (.csv or .parquet); <stem>.excluded.<ext> and "
            "<stem>.manifest.json are written beside it."
        ),
    ],
    kind: KindOption = "recommendations",
    n: CountOption = 10,
    members: MembersOption = None,
    segment: SegmentOption = None,
    min_churn_risk: MinChurnRiskOption = None,
    min_expected_value: MinExpectedValueOption = None,
    model: ModelOption = None,
    as_of: AsOfOption = None,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.99, help="Share of the family's members held back as a control group."
        ),
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the holdout draw (keep it per family).")] = 0,
    suppress: Annotated[
        list[Path] | None,
        typer.Option(
            help="Members never to send to (opt-outs, complaints): a CSV/Parquet with "
            "member_id, or one id a line; repeat for several files."
        ),
    ] = None,
    item_cap_days: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="No item again to a member within this many days in the family."
        ),
    ] = None,
    max_sends: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many sends to a member (every family) ..."),
    ] = None,
    per_days: Annotated[
        float | None, typer.Option(min=0.0, help="... per this many days (with --max-sends).")
    ] = None,
    offers: Annotated[
        Path | None,
        typer.Option(
            help="Offers file (docs/campaigns.md#offers): each treatment member gets at most "
            "one, in the columns offer_id and offer_reason and in the ledger."
        ),
    ] = None,
    batch: BatchOption = 4096,
    events_url: Annotated[
        str | None,
        typer.Option(
            envvar="RECSYS_EVENTS_URL",
            help="Event store holding the campaign ledger (and the events after the model "
            "artifact's data_end that the lists take in); default: the one serving uses, "
            "SQLite under data/serving/, created if missing.",
        ),
    ] = None,
) -> None:
    """Export a campaign: suppression first, then the holdout draw, then the caps; what is
    sent goes to --out, who and what was left out (and why) to the reasons file, the sends of
    both groups to the ledger."""
    from cli.privacy import audited_command
    from serving.artifact_sources import manifest_version
    from serving.erasure import erased_member_ids
    from training.campaigns import CampaignPlan, FrequencyCaps, export_campaign
    from training.roster import Roster
    from training.targeting import ScoreThresholds

    require_kind(kind)
    opened = open_artifact(artifact)
    # Opt-outs in the artifact's ids (pseudonyms when it has them): a raw id would match nobody.
    pseudonyms = artifact_pseudonyms(opened)
    suppressed: set[str] = set()
    for path in suppress or []:
        suppressed.update(read_member_ids(path, "--suppress", pseudonyms=pseudonyms))
    if offers is not None and not offers.is_file():
        raise ConfigError(f"--offers {offers}: no such file")
    plan = CampaignPlan(
        campaign, holdout, seed, FrequencyCaps(item_cap_days, max_sends, per_days), suppressed,
        offers,
    )  # fmt: skip
    roster = Roster(opened)
    thresholds = ScoreThresholds(min_churn_risk, min_expected_value)
    chosen = campaign_members(opened, roster, members, segment, thresholds)
    total = len(opened.member_ids) + len(roster) if chosen is None else len(chosen)
    filters = {
        "members": str(members) if members is not None else None,
        "segment": segment,
        "min_churn_risk": min_churn_risk,
        "min_expected_value": min_expected_value,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "suppress": [str(path) for path in suppress or []],
    }
    with (
        audited_command(events_url, "campaign export", target=campaign) as (store, audit),
        counting_bar("exporting", total) as bar,
    ):
        summary = export_campaign(
            opened, out, store, plan, kind=kind, n=n, member_ids=chosen, model=model,  # type: ignore[arg-type]
            batch=batch, events=store, progress=bar.advance, as_of=as_of,
            model_version=manifest_version(opened.manifest), filters=filters,
            erased=erased_member_ids(store),
        )  # fmt: skip
        audit.detail.update(
            campaign_id=summary.campaign_id, out=str(out), kind=kind,
            sent=summary.outcomes.sent, holdout=summary.outcomes.holdout,
            erased_left_out=summary.export.erased_members,
        )  # fmt: skip
    counts = summary.outcomes
    console.print(
        f"campaign {summary.campaign_id}: {counts.campaign_set:,} members: {counts.sent:,} sent "
        f"({summary.export.rows:,} rows to {out}), {counts.holdout:,} holdout, "
        f"{counts.suppressed:,} suppressed, {counts.capped:,} capped "
        f"({counts.items_capped:,} items capped); {counts.no_items:,} with nothing to send; "
        f"manifest {summary.manifest} ({summary.export.seconds:.2f} s)"
    )


app.command("report")(report)
