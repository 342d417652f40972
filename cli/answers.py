"""Answer commands, read from files without a server: ``recsys recommend`` (a member's top
items from a model artifact), ``recsys bundles`` (frequently-bought-together rules of a
basket file) and ``recsys segments`` (every member's RFM segment)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.table import Table

from cli.options import (
    ArtifactOption,
    ColumnsOption,
    InteractionsOption,
    MaxBadShareOption,
    PresetOption,
    artifact_pseudonyms,
    load_with_options,
    open_artifact,
    write_table,
)
from cli.render import console, print_segment_summary
from features import columns as col
from features.errors import ConfigError
from features.members import compute_member_profiles, segment_summary
from features.validate import DEFAULT_MAX_BAD_SHARE, load_members
from training.config import RuleConfig

if TYPE_CHECKING:
    from training.artifact import ModelArtifact

__all__ = ["bundles", "recommend", "segments"]


def recommend(
    artifact: ArtifactOption,
    member: Annotated[list[str], typer.Option(help="Member id; repeat for several.")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=1000, help="List length.")] = 10,
    model: Annotated[str | None, typer.Option(help="Model name (default: the chosen one).")] = None,
    category: Annotated[str | None, typer.Option(help="Only items of this category.")] = None,
    include_purchased: Annotated[
        bool,
        typer.Option(
            "--include-purchased",
            help="Allow items the member already bought (by default they are left out; by a "
            "next-basket artifact, only those members do not buy again).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Top-n items for members, from a model artifact."""
    from training.recommend import ArtifactRecommender

    opened = open_artifact(artifact)
    pseudonyms = artifact_pseudonyms(opened)  # the artifact's ids: pseudonyms when it has them
    members = pseudonyms.of_all(member) if pseudonyms is not None else member
    answers = ArtifactRecommender(opened).recommend(
        members, n, model=model, category=category,
        exclude_purchased=False if include_purchased else None,
    )  # fmt: skip
    titles = _titles(opened)
    for answer in answers:
        if as_json:
            typer.echo(json.dumps(answer.__dict__))
            continue
        note = " (fallback: popularity)" if answer.fallback else ""
        table = Table(title=f"{answer.member_id}: {answer.model}{note}")
        for name in ("rank", "item", "title", "score"):
            table.add_column(name)
        for rank, (item, score) in enumerate(zip(answer.item_ids, answer.scores, strict=True), 1):
            table.add_row(str(rank), item, titles.get(item, ""), f"{score:.4f}")
        console.print(table)


def _titles(artifact: ModelArtifact) -> dict[str, str]:
    catalog = artifact.catalog
    if catalog is None or col.TITLE not in catalog.columns:
        return {}
    return dict(catalog.select(col.ITEM_ID, pl.col(col.TITLE).fill_null("")).iter_rows())


def bundles(
    out: Annotated[Path, typer.Option(help="The rules, one per row (.csv or .parquet).")],
    interactions: Annotated[
        Path | None,
        typer.Option(
            "--interactions", "-i", help="Interactions file: baskets are its purchase orders."
        ),
    ] = None,
    baskets: Annotated[
        Path | None,
        typer.Option(help="Basket file instead: one basket per line, items comma-separated."),
    ] = None,
    preset: PresetOption = None,
    columns: ColumnsOption = None,
    max_bad_share: MaxBadShareOption = DEFAULT_MAX_BAD_SHARE,
    min_support: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of baskets an itemset must be in (default: --min-count baskets, raised "
            "until at most 20,000 pairs pass).",
        ),
    ] = None,
    min_count: Annotated[
        int, typer.Option(min=1, help="Baskets an itemset must be in, without --min-support.")
    ] = RuleConfig().min_count,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Least P(consequent | antecedents), the only test on a rule (default: "
            "--min-excess-sd and --baseline-rank).",
        ),
    ] = RuleConfig().min_confidence,
    min_excess_sd: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Without --min-confidence: standard deviations by which a rule's count must "
            "exceed its count under independence.",
        ),
    ] = RuleConfig().min_excess_sd,
    baseline_rank: Annotated[
        int,
        typer.Option(
            min=1,
            help="Without --min-confidence: a rule must be right at least as often as the "
            "best seller of this rank.",
        ),
    ] = RuleConfig().baseline_rank,
    max_size: Annotated[
        int, typer.Option(min=2, max=10, help="Most items in a rule (antecedents + consequent).")
    ] = RuleConfig().max_size,
) -> None:
    """Frequently-bought-together rules: support, confidence, lift, leverage, conviction."""
    from features.baskets import baskets_from_interactions, read_basket_file
    from training.rules import mine_rules

    if (interactions is None) == (baskets is None):
        raise ConfigError("give either --interactions or --baskets (one of them)")
    if baskets is not None:
        found = read_basket_file(baskets)
    else:
        assert interactions is not None
        loaded = load_with_options(interactions, preset, columns, max_bad_share)
        found = baskets_from_interactions(loaded.frame)
    config = RuleConfig(
        min_support=min_support, min_count=min_count, min_confidence=min_confidence,
        min_excess_sd=min_excess_sd, baseline_rank=baseline_rank, max_size=max_size,
    )  # fmt: skip
    mined = mine_rules(found, config)
    rules = mined.table
    if out.suffix == ".csv":  # CSV has no lists: antecedents joined by " | "
        rules = rules.with_columns(pl.col("antecedents").list.join(" | "))
    write_table(rules, out)
    console.print(
        f"{rules.height:,} rules from {found.n_baskets:,} baskets and {found.n_items:,} items "
        f"(itemsets in at least {mined.funnel.min_count:,} baskets) written to {out}"
    )
    why = mined.funnel.why()
    if why:
        console.print(f"Few rules: {why}")


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
        write_table(profiles, out)
    if as_json:
        typer.echo(json.dumps(summary.to_dicts()))
        return
    print_segment_summary(summary, as_of=as_of)
    if out:
        console.print(f"Profiles of {profiles.height:,} members written to {out}")
