"""The offer each treatment member of a campaign export gets (``--offers FILE``).

The choice itself is :func:`training.offers.choose_offers` (at most one offer per member, the
most expected incremental value within the offers' budgets). A budget is shared by the whole
campaign, so the choice is made once, before the export's batches, for every member who will be
treated unless a member cap stops them: the campaign set less the suppressed and the holdout
draw, both known before anything is answered. The caps are not: a capped member's offer is not
sent, and its share of a budget goes unused. The scores come from the model artifact's member
profiles: churn risk, expected spend as expected value, tier, segment, the usual basket
(spend per order so far) and, for offers restricted to categories, the member's preferred
categories (their profile's category tags: the sent items' categories are known only once the
lists are answered, after the budgets are shared out). A member it has no profile of gets no
offer, with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import polars as pl

from features import columns as col
from features.errors import ConfigError
from training.artifact import ModelArtifact
from training.campaigns.holdout import in_holdout
from training.member_kpis import PROFILES_FILE
from training.offers import BASKET_VALUE, MEMBER_CATEGORIES, choose_offers

__all__ = ["OFFER_COLUMNS", "campaign_offers"]

#: The columns an offer adds to the export's rows.
OFFER_COLUMNS = ("offer_id", "offer_reason")
_PROFILE_COLUMNS = ("segment", "tier", "churn_risk")


def campaign_offers(
    artifact: ModelArtifact,
    offers: pl.DataFrame,
    members: Sequence[str],
    *,
    family: str,
    holdout_share: float,
    seed: int,
    suppressed: Collection[str],
    sent_at: float,
) -> pl.DataFrame:
    """``member_id``, ``offer_id`` (null: none) and ``offer_reason`` for the members of
    ``members`` who are neither suppressed nor held out, the offers valid at ``sent_at``."""
    ids = pl.Series(col.MEMBER_ID, members, dtype=pl.Utf8)
    candidates = ids.filter(
        ~ids.is_in(pl.Series(list(suppressed), dtype=pl.Utf8).implode())
        & ~pl.Series(in_holdout(family, members, holdout_share, seed))
    )
    chosen = choose_offers(
        _scored(artifact, candidates), offers, as_of=datetime.fromtimestamp(sent_at, UTC)
    )
    return chosen.select(col.MEMBER_ID, "offer_id", pl.col("reason").alias("offer_reason"))


def _scored(artifact: ModelArtifact, candidates: pl.Series) -> pl.DataFrame:
    """The candidates with the profile columns :func:`choose_offers` reads (null: none)."""
    path = artifact.extra_files.get(PROFILES_FILE)
    if path is None:
        raise ConfigError(
            f"--offers: the model artifact {artifact.path} has no {PROFILES_FILE}, whose churn "
            "risk and expected value choose the offers; retrain it with recsys train"
        )
    profiles = pl.read_parquet(
        path,
        columns=[
            col.MEMBER_ID, *_PROFILE_COLUMNS, "expected_spend", "frequency", "monetary",
            "preference_tags",
        ],
    ).select(
        col.MEMBER_ID, *_PROFILE_COLUMNS,
        pl.col("expected_spend").alias("expected_value"),
        pl.when(pl.col("frequency") > 0).then(pl.col("monetary") / pl.col("frequency"))
        .alias(BASKET_VALUE),
        pl.col("preference_tags").list.eval(
            pl.element().filter(pl.element().struct.field("kind") == "category")
            .struct.field("name")
        ).alias(MEMBER_CATEGORIES),
    )  # fmt: skip
    return candidates.to_frame().join(profiles, on=col.MEMBER_ID, how="left", maintain_order="left")
