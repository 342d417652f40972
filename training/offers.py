"""Which offer each member of a campaign gets: at most one, for the most expected incremental
value the offers' budgets allow, with the reason for every choice.

**The value of an offer to a member.** A coupon pays when it makes a sale that would not have
happened, and costs whenever it is redeemed, also by members who would have bought anyway. With
``r`` the member's churn risk (the chance of no purchase in the scores' horizon), ``B`` their
usual basket (``basket_value``; ``expected_value`` where the members frame has none) and
the offer's threshold ``T`` (``min_basket``)::

    basket   B' = max(B, T)                      the order the offer asks for
    redeem   p  = propensity × min(1, B / T)     a threshold far above the usual basket is
                                                 reached less often (1 when T is 0)
    gain        = margin × (r × B' + (1 − r) × (B' − B))
    cost        = percent_off: value% × B'   amount_off: min(value, B')   free_gift: value
                  points_multiplier: (value − 1) × point_value × B'
    expected incremental value = p × (gain − cost)

A redemption by a member who would not have bought (probability ``r``) brings the margin of the
whole order; one by a member who would have bought anyway brings only the margin of what the
threshold added to their usual basket. So a discount to a loyal member is mostly given away,
and the same discount to a member at risk can pay for itself. ``propensity`` is the member's
chance of acting on the campaign (the recommender's score of what is sent, or the member's
purchase frequency); without one, :attr:`OfferPolicy.redemption_rate` stands in for everyone.
Category restrictions are not priced separately: the whole basket counts.

**Eligibility.** An offer is open to a member when it is valid at ``as_of`` (``valid_from <=
as_of <= valid_to``), lists the member's tier and segment (or restricts neither), and, when it
names categories, the members frame's ``member_categories`` holds one of them: the categories
of the items the campaign sends the member, or, where offers are chosen before the lists exist,
the member's preferred categories (their profile's category tags). Without that column a
category offer goes to nobody. A member without churn risk or expected value (an unscored
artifact) gets no offer.

**Within the budget.** Every member given an offer is counted as if they redeem it (its full
``cost``), so that a budget or ``max_redemptions`` holds whoever redeems. Choosing is a
deferred acceptance (Gale and Shapley): each member asks for the offer worth most to them among
those with positive value; each offer keeps, among those asking and those it holds, the most
value per unit of cost until its budget or cap is reached (ties: more value, then the members
frame's order) and turns the rest away; a member turned away asks for their next offer, until
no one asks. Each member asks each offer at most once, and everything is a polars sort per
round, so a million members cost seconds.

**Reasons** start with one of :data:`REASONS`: ``chosen`` (with how many offers were worth it
and which spent offers were passed over), ``not eligible``, ``no positive value`` (with the
best offer's value), ``budget spent`` (naming the offers) and ``not scored``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from features import columns as col
from features import offers as of
from features.errors import DataError
from features.frames import require_columns
from features.members import SEGMENT
from features.times import as_naive_utc
from training.member_profiles import CHURN_RISK

__all__ = [
    "BASKET_VALUE",
    "BUDGET_SPENT",
    "CHOSEN",
    "EXPECTED_INCREMENTAL_VALUE",
    "EXPECTED_VALUE",
    "MEMBER_CATEGORIES",
    "NOT_ELIGIBLE",
    "NOT_SCORED",
    "NO_POSITIVE_VALUE",
    "PROPENSITY",
    "REASON",
    "REASONS",
    "OfferPolicy",
    "choose_offers",
]

#: Columns of the members frame besides member_id, tier, segment and churn_risk.
EXPECTED_VALUE: Final = "expected_value"
PROPENSITY: Final = "propensity"
BASKET_VALUE: Final = "basket_value"
MEMBER_CATEGORIES: Final = "member_categories"
#: Columns of the answer besides member_id and offer_id.
EXPECTED_INCREMENTAL_VALUE: Final = "expected_incremental_value"
REASON: Final = "reason"

CHOSEN: Final = "chosen"
NOT_ELIGIBLE: Final = "not eligible"
NO_POSITIVE_VALUE: Final = "no positive value"
BUDGET_SPENT: Final = "budget spent"
NOT_SCORED: Final = "not scored"
REASONS: Final = (CHOSEN, NOT_ELIGIBLE, NO_POSITIVE_VALUE, BUDGET_SPENT, NOT_SCORED)

_REQUIRED: Final = (col.MEMBER_ID, col.TIER, SEGMENT, CHURN_RISK, EXPECTED_VALUE)
_NONE: Final = -1  # no offer held (offer positions are 0..K-1)


class OfferPolicy(BaseModel):
    """The economics the value of an offer is judged by (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(default=0.3, gt=0, le=1, description="Gross margin share of a sale.")
    redemption_rate: float = Field(
        default=0.2, gt=0, le=1, description="P(redeem) of members without a propensity."
    )
    point_value: float = Field(
        default=0.01, ge=0, description="What the points earned on one unit of spend cost."
    )


_DEFAULT_POLICY = OfferPolicy()  # frozen, so one shared default is safe


def choose_offers(
    members: pl.DataFrame,
    offers: pl.DataFrame,
    *,
    as_of: datetime | None = None,
    policy: OfferPolicy = _DEFAULT_POLICY,
) -> pl.DataFrame:
    """One row per member, in ``members``' order: ``member_id``, ``offer_id`` (null: none),
    ``expected_incremental_value`` (null without an offer) and ``reason``.

    ``members``: ``member_id`` (unique), ``tier``, ``segment``, ``churn_risk``,
    ``expected_value``, optionally ``propensity``, ``basket_value`` and ``member_categories``
    (list of str); ``offers``: :func:`features.offers.load_offers`' frame; ``as_of``: when the
    offers must be valid (default: now).
    """
    require_columns(members, _REQUIRED, "campaign members")
    if members.get_column(col.MEMBER_ID).is_duplicated().any():
        example = members.filter(pl.col(col.MEMBER_ID).is_duplicated()).item(0, col.MEMBER_ID)
        raise DataError(f"campaign members repeat member_id {example!r}; give each member once")
    moment = as_naive_utc(as_of or datetime.now(UTC))
    valid = _valid_offers(offers, moment)
    frame = _member_terms(members, policy)
    priced = _priced(_eligible_pairs(frame, valid), frame, valid, policy)
    worth_giving = priced.filter(pl.col("_value") > 0)
    held, refused_by = _allocate(worth_giving, valid, members.height)
    return _answer(frame, valid, priced, worth_giving, held, refused_by, moment)


def _valid_offers(offers: pl.DataFrame, moment: datetime) -> pl.DataFrame:
    require_columns(offers, of.OFFER_COLUMNS, "offers")
    started = pl.col(of.VALID_FROM).is_null() | (pl.col(of.VALID_FROM) <= moment)
    not_ended = pl.col(of.VALID_TO).is_null() | (pl.col(of.VALID_TO) >= moment)
    valid = offers.filter(started & not_ended)
    return valid.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_o"))


def _member_terms(members: pl.DataFrame, policy: OfferPolicy) -> pl.DataFrame:
    """Members with their position, basket, propensity and categories (filled in)."""
    present = set(members.columns)
    basket = pl.col(EXPECTED_VALUE)
    if BASKET_VALUE in present:
        basket = pl.coalesce(BASKET_VALUE, EXPECTED_VALUE)
    return members.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_m"),
        col.MEMBER_ID, col.TIER, SEGMENT,
        pl.col(CHURN_RISK).cast(pl.Float64).clip(0, 1).alias("_risk"),
        basket.cast(pl.Float64).clip(lower_bound=0).alias("_basket"),
        (pl.col(PROPENSITY).cast(pl.Float64).clip(0, 1).fill_null(policy.redemption_rate)
         if PROPENSITY in present else pl.lit(policy.redemption_rate)).alias("_propensity"),
        (pl.col(MEMBER_CATEGORIES).cast(pl.List(pl.Utf8)) if MEMBER_CATEGORIES in present
         else pl.lit([], pl.List(pl.Utf8))).alias("_categories"),
        (pl.col(CHURN_RISK).is_not_null() & pl.col(EXPECTED_VALUE).is_not_null()).alias("_scored"),
    )  # fmt: skip


def _eligible_pairs(frame: pl.DataFrame, valid: pl.DataFrame) -> pl.DataFrame:
    """(member, offer) for every valid offer open to the member; one filter per offer, since
    a campaign's offers are few and its members many."""
    pairs = [frame.head(0).select("_m", pl.lit(0, pl.Int64).alias("_o"))]
    for offer in valid.iter_rows(named=True):
        open_to = pl.lit(True)
        if offer[of.TIERS]:
            open_to &= pl.col(col.TIER).is_in(offer[of.TIERS]).fill_null(False)
        if offer[of.SEGMENTS]:
            open_to &= pl.col(SEGMENT).is_in(offer[of.SEGMENTS]).fill_null(False)
        if offer[of.CATEGORIES]:
            wanted = pl.lit(offer[of.CATEGORIES], pl.List(pl.Utf8))
            open_to &= pl.col("_categories").list.set_intersection(wanted).list.len() > 0
        pairs.append(frame.filter(open_to).select("_m", pl.lit(offer["_o"], pl.Int64).alias("_o")))
    return pl.concat(pairs)


def _priced(
    eligible: pl.DataFrame, frame: pl.DataFrame, valid: pl.DataFrame, policy: OfferPolicy
) -> pl.DataFrame:
    """Each eligible pair with its ``_cost`` (of one redemption), ``_value`` (expected
    incremental; null for an unscored member) and ``_ratio`` (value per unit of cost)."""
    usual, threshold = pl.col("_basket"), pl.col(of.MIN_BASKET)
    asked = pl.max_horizontal(usual, threshold)
    kind, amount = pl.col(of.KIND), pl.col(of.VALUE)
    cost = (
        pl.when(kind == of.PERCENT_OFF).then(amount / 100 * asked)
        .when(kind == of.AMOUNT_OFF).then(pl.min_horizontal(amount, asked))
        .when(kind == of.FREE_GIFT).then(amount)
        .otherwise((amount - 1) * policy.point_value * asked)
    )  # fmt: skip
    reach = pl.when(threshold > usual).then(usual / threshold).otherwise(1.0)
    risk = pl.col("_risk")
    gain = policy.margin * (risk * asked + (1 - risk) * (asked - usual))
    return (
        eligible.join(frame.select("_m", "_risk", "_basket", "_propensity", "_scored"), on="_m")
        .join(valid.select("_o", of.KIND, of.VALUE, of.MIN_BASKET), on="_o")
        .with_columns(cost.alias("_cost"), (pl.col("_propensity") * reach).alias("_p"))
        .with_columns(
            pl.when(pl.col("_scored")).then(pl.col("_p") * (gain - pl.col("_cost"))).alias("_value")
        )
        .with_columns(
            pl.when(pl.col("_cost") > 0)
            .then(pl.col("_value") / pl.col("_cost"))
            .otherwise(float("inf"))
            .alias("_ratio")
        )
        .select("_m", "_o", "_cost", "_value", "_ratio")
    )


def _allocate(
    pairs: pl.DataFrame, valid: pl.DataFrame, n_members: int
) -> tuple[np.ndarray, pl.DataFrame]:
    """The offer position each member holds (``_NONE``: none) after deferred acceptance, and
    the (member, offer) pairs that were turned away for want of budget.

    A member's pair of rank ``next_rank[m]`` is the one they hold or ask for (a member turned
    away moves to the next rank), so each round's pool is those pairs, found by one gather.
    """
    ranked = (
        pairs.sort(["_m", "_value", "_o"], descending=[False, True, False])
        .with_columns(pl.int_range(pl.len()).over("_m").alias("_rank"))
        .join(
            valid.select(
                "_o",
                pl.col(of.BUDGET).fill_null(float("inf")).alias("_budget"),
                pl.col(of.MAX_REDEMPTIONS).cast(pl.Float64).fill_null(float("inf")).alias("_cap"),
            ),
            on="_o",
            maintain_order="left",
        )
    )
    member, rank = ranked.get_column("_m").to_numpy(), ranked.get_column("_rank").to_numpy()
    held = np.full(n_members, _NONE, dtype=np.int64)
    next_rank = np.zeros(n_members, dtype=np.int64)
    refused: list[pl.DataFrame] = []
    while True:
        current = rank == next_rank[member]
        if not (current & (held[member] == _NONE)).any():
            break
        decided = (
            ranked.filter(pl.Series(current))
            .sort(["_o", "_ratio", "_value", "_m"], descending=[False, True, True, False])
            .with_columns(
                (
                    (pl.col("_cost").cum_sum().over("_o") <= pl.col("_budget"))
                    & (pl.int_range(1, pl.len() + 1).over("_o") <= pl.col("_cap"))
                ).alias("_kept")
            )
        )
        kept, turned_away = decided.filter("_kept"), decided.filter(~pl.col("_kept"))
        away = turned_away.get_column("_m").to_numpy()
        held[away] = _NONE
        next_rank[away] = turned_away.get_column("_rank").to_numpy() + 1
        held[kept.get_column("_m").to_numpy()] = kept.get_column("_o").to_numpy()
        refused.append(turned_away.select("_m", "_o"))
    return held, pl.concat([pairs.head(0).select("_m", "_o"), *refused])


def _answer(
    frame: pl.DataFrame,
    valid: pl.DataFrame,
    priced: pl.DataFrame,
    pairs: pl.DataFrame,
    held: np.ndarray,
    refused_by: pl.DataFrame,
    moment: datetime,
) -> pl.DataFrame:
    """The chosen offer, its value and the reason of every member."""
    ids = valid.select("_o", of.OFFER_ID)
    best = (
        priced.group_by("_m")
        .agg(
            pl.len().alias("_eligible"),
            pl.col("_o").get(pl.col("_value").fill_null(-np.inf).arg_max()),
            pl.col("_value").max(),
        )
        .join(ids, on="_o")
        .select(
            "_m",
            "_eligible",
            pl.col(of.OFFER_ID).alias("_best"),
            pl.col("_value").alias("_best_value"),
        )
    )
    worth = pairs.group_by("_m").agg(pl.len().alias("_worth"))
    spent = _spent_offers(refused_by, valid)
    chosen = pl.DataFrame({"_m": np.arange(len(held)), "_o": held}).filter(pl.col("_o") != _NONE)
    chosen = chosen.join(pairs.select("_m", "_o", "_value"), on=["_m", "_o"]).join(ids, on="_o")
    table = (
        frame.select("_m", col.MEMBER_ID, col.TIER, SEGMENT, "_scored")
        .join(chosen.select("_m", of.OFFER_ID, "_value"), on="_m", how="left")
        .join(best, on="_m", how="left")
        .join(worth, on="_m", how="left")
        .join(spent, on="_m", how="left")
        .sort("_m")
    )
    return table.select(
        col.MEMBER_ID,
        of.OFFER_ID,
        pl.col("_value").alias(EXPECTED_INCREMENTAL_VALUE),
        _reason(valid.height, moment).alias(REASON),
    )


def _spent_offers(refused_by: pl.DataFrame, valid: pl.DataFrame) -> pl.DataFrame:
    """Per member turned away, the offers that turned them away (``_spent``: ids in file
    order). Members share few such sets, so each distinct set (a bit mask of offer positions)
    is named once rather than a list joined per member."""
    bit = pl.lit(2, pl.Int64) ** pl.col("_o")
    masks = refused_by.unique().group_by("_m").agg(bit.sum().alias("_mask"))
    ids = valid.get_column(of.OFFER_ID).to_list()
    distinct = masks.get_column("_mask").unique().to_list()
    named = [", ".join(id_ for o, id_ in enumerate(ids) if mask >> o & 1) for mask in distinct]
    names = pl.DataFrame({"_mask": distinct, "_spent": named}, schema_overrides={"_mask": pl.Int64})
    return masks.join(names, on="_mask").select("_m", "_spent")


def _reason(n_valid: int, moment: datetime) -> pl.Expr:
    """The reason of each member's choice, as text that starts with one of :data:`REASONS`."""
    day = moment.date().isoformat()
    nobody = f"{NOT_ELIGIBLE}: no offer is valid on {day}"
    open_to = pl.format(
        "{}: no offer valid on {} is open to tier {}, segment {}",
        pl.lit(NOT_ELIGIBLE), pl.lit(day),
        pl.col(col.TIER).fill_null("none"), pl.col(SEGMENT).fill_null("none"),
    )  # fmt: skip
    passed_over = pl.when(pl.col("_spent").is_not_null()).then(
        pl.format("; passed over spent {}", pl.col("_spent"))
    )
    return (
        pl.when(pl.col(of.OFFER_ID).is_not_null())
        .then(
            pl.format("{}: best of {} offer(s) worth giving", pl.lit(CHOSEN), pl.col("_worth"))
            + passed_over.fill_null("")
        )
        .when(~pl.col("_scored"))
        .then(pl.lit(f"{NOT_SCORED}: the artifact has no churn risk or expected value"))
        .when(pl.lit(n_valid == 0))
        .then(pl.lit(nobody))
        .when(pl.col("_eligible").is_null())
        .then(open_to)
        .when(pl.col("_worth").is_null())
        .then(
            pl.format(
                "{}: the best, {}, is worth {}",
                pl.lit(NO_POSITIVE_VALUE),
                pl.col("_best"),
                pl.col("_best_value").round(2),
            )
        )
        .otherwise(pl.format("{}: {}", pl.lit(BUDGET_SPENT), pl.col("_spent")))
    )
