"""Train/test splits of validated interactions, and the CLI spec strings that choose one.

Offline evaluation is only honest when the test rows are ones the model could not have seen, so
every splitter returns a partition of the input rows (train and test never share a row, and,
except for :func:`explicit_split`, together they are all rows). Rows keep their original order
and every column, including ones this module does not know about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator

from features.baskets import order_key
from features.columns import EVENT, ITEM_ID, MEMBER_ID, PURCHASE, TIMESTAMP
from features.errors import ConfigError, DataError
from features.frames import require_columns
from features.times import as_naive_utc

__all__ = [
    "LastBasketsSpec",
    "LastDaysSplitSpec",
    "LastShareSplitSpec",
    "LeaveLastOutSpec",
    "RatioSplitSpec",
    "Split",
    "SplitSpec",
    "TemporalSplitSpec",
    "explicit_split",
    "last_share_split",
    "leave_last_baskets_out",
    "leave_last_k_out",
    "order_starts",
    "parse_split_spec",
    "ratio_split",
    "temporal_split",
]

SplitGroup = Literal["member", "item"]

_GROUP_COLUMNS: Final[dict[str, str]] = {"member": MEMBER_ID, "item": ITEM_ID}
#: The columns that identify one event; a train row equal to a test row on these is a leak.
_EVENT_KEY: Final[tuple[str, ...]] = (MEMBER_ID, ITEM_ID, EVENT, TIMESTAMP)
_ROW: Final = "__split_row"
_ORDER: Final = "__order"
_CUT: Final = "__cut"
_ACCEPTED_FORMS: Final = (
    "temporal:YYYY-MM-DD (or an ISO datetime), last-days:N, leave-last:K, last-baskets:K, "
    "last-share:R, "
    "ratio:R[:member|item][:SEED] (for example ratio:0.2:item:7)"
)


# --- the split result -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # frames have no single truth value to compare
class Split:
    """A train/test partition of interactions.

    ``removed_from_train`` counts train rows dropped because they duplicate a test event (only
    :func:`explicit_split` removes any), so that a summary shows that nothing vanished silently.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    removed_from_train: int = 0

    def describe(self) -> dict[str, int]:
        """Row, member and item counts, including test ids never seen in train (cold starts)."""
        counts = {"train_rows": self.train.height, "test_rows": self.test.height}
        train_ids, test_ids = _distinct(self.train), _distinct(self.test)
        for column, noun in ((MEMBER_ID, "members"), (ITEM_ID, "items")):
            counts[f"train_{noun}"] = train_ids[column].len()
            counts[f"test_{noun}"] = test_ids[column].len()
            counts[f"test_{noun}_not_in_train"] = _count_unseen(test_ids[column], train_ids[column])
        counts["removed_from_train"] = self.removed_from_train
        return counts


def _distinct(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """The distinct member and item ids of ``frame``, both columns in one parallel pass."""
    lists = frame.select(pl.col(MEMBER_ID).unique().implode(), pl.col(ITEM_ID).unique().implode())
    return {column: lists.get_column(column).explode() for column in (MEMBER_ID, ITEM_ID)}


def _count_unseen(candidates: pl.Series, seen: pl.Series) -> int:
    return int((~candidates.is_in(seen.implode())).sum())


def _mask_of_rows(height: int, rows: pl.Series) -> pl.Series:
    """A boolean mask of ``height`` rows that is true at the given row positions."""
    mask = np.zeros(height, dtype=bool)
    mask[rows.to_numpy()] = True
    return pl.Series(mask)


def _partition(interactions: pl.DataFrame, in_test: pl.Series) -> Split:
    """Cut the frame with one boolean mask, which makes disjointness and coverage automatic."""
    return Split(train=interactions.filter(~in_test), test=interactions.filter(in_test))


# --- argument checks shared by the splitters and their spec objects ---------------------------


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _check_test_ratio(value: float) -> float:
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ConfigError(f"test_ratio must lie strictly between 0 and 1, got {value!r}")
    return value


def _group_column(by: str) -> str:
    try:
        return _GROUP_COLUMNS[by]
    except KeyError:
        raise ConfigError(
            f"ratio split groups by one of {sorted(_GROUP_COLUMNS)}, got {by!r}"
        ) from None


# --- splitters --------------------------------------------------------------------------------


def temporal_split(
    interactions: pl.DataFrame, cutoff: datetime | None = None, last_days: int | None = None
) -> Split:
    """Train on everything strictly before the cutoff, test on everything at or after it.

    This is the split that mirrors production (the model is trained on the past and serves the
    future). Give exactly one of ``cutoff`` or ``last_days``; ``last_days=N`` puts the last N
    days (N x 24 hours before the latest timestamp) in test.

    Both sides are slices of one time-ordered frame, not filtered copies: a time cut of the
    sorted frame is contiguous, so train, test, a validation window carved from train by time
    and train + test concatenated again for the refit all share the same buffers. At 20M
    events each copy was about 1.7 GB of ``recsys train``'s peak. The sort is stable, so rows
    with the same timestamp keep their order; a frame already in time order is not copied.
    """
    require_columns(interactions, (TIMESTAMP,), "interactions")
    boundary = _resolve_cutoff(interactions, cutoff, last_days)
    ordered = (
        interactions
        if interactions.get_column(TIMESTAMP).is_sorted()
        else interactions.sort(TIMESTAMP, maintain_order=True)
    )
    cut = int(ordered.get_column(TIMESTAMP).search_sorted(boundary, side="left"))
    return Split(train=ordered.slice(0, cut), test=ordered.slice(cut))


def _resolve_cutoff(
    interactions: pl.DataFrame, cutoff: datetime | None, last_days: int | None
) -> datetime:
    if cutoff is not None and last_days is None:
        return as_naive_utc(cutoff)
    if last_days is not None and cutoff is None:
        days = _check_positive_int(last_days, "last_days")  # config errors before data errors
        return _latest_timestamp(interactions) - timedelta(days=days)
    raise ConfigError(
        "temporal split needs exactly one of cutoff (a datetime) or last_days (a number of "
        f"days), got cutoff={cutoff!r} and last_days={last_days!r}"
    )


def _latest_timestamp(interactions: pl.DataFrame) -> datetime:
    latest = interactions.get_column(TIMESTAMP).max()
    if not isinstance(latest, datetime):
        raise DataError(
            "cannot place a last-days cutoff in an empty interactions table; "
            "check the input file or give an explicit cutoff"
        )
    return latest


def leave_last_k_out(interactions: pl.DataFrame, k: int = 1) -> Split:
    """Per member, the k most recent interactions go to test; the rest stay in train.

    Ties in timestamp are broken by row order (a later row counts as later), which makes the
    split deterministic. Members with k or fewer interactions stay wholly in train: testing them
    would leave the model nothing to learn them from.
    """
    _check_positive_int(k, "k")
    return _latest_per_member(interactions, pl.when(pl.len() > k).then(k).otherwise(0))


def last_share_split(interactions: pl.DataFrame, share: float) -> Split:
    """Per member, the latest ``round(share * n)`` of their n interactions go to test.

    A per-member time cut like :func:`leave_last_k_out`, but proportional: each member's test
    is the same share of their history, the shape of protocols that hold out "each user's last
    20%". Ties in timestamp are broken by row order; members of one row stay in train.
    """
    _check_test_ratio(share)
    group_size = pl.len()
    return _latest_per_member(
        interactions, pl.when(group_size > 1).then((group_size * share).round(0)).otherwise(0)
    )


def order_starts(interactions: pl.DataFrame) -> pl.DataFrame:
    """One row per order (:func:`~features.baskets.order_key`) of the purchases: ``member_id``,
    the order's key and its start (its first row's time), in member and start order; ties in
    time by key, so that "a member's last order" is always one and the same."""
    purchases = interactions.filter(pl.col(EVENT) == PURCHASE)
    return (
        purchases.select(MEMBER_ID, TIMESTAMP, order_key(purchases.columns).alias(_ORDER))
        .group_by(MEMBER_ID, _ORDER)
        .agg(pl.col(TIMESTAMP).min())
        .sort(MEMBER_ID, TIMESTAMP, _ORDER)
    )


def leave_last_baskets_out(interactions: pl.DataFrame, k: int = 1) -> Split:
    """Per member, everything from the start of their k-th last order on goes to test.

    The next-basket protocol's per-member shape: the test is each member's last k baskets
    (orders, as :func:`~features.baskets.order_key` defines them), with whatever else the
    member did from then on. Members with k or fewer orders stay wholly in train, as in
    :func:`leave_last_k_out`: a member needs a basket before the test to be predictable.
    """
    _check_positive_int(k, "k")
    require_columns(interactions, (MEMBER_ID, TIMESTAMP, EVENT), "interactions")
    cuts = (
        order_starts(interactions)
        .group_by(MEMBER_ID)
        .agg(pl.col(TIMESTAMP).tail(k + 1))
        .filter(pl.col(TIMESTAMP).list.len() > k)
        .select(MEMBER_ID, pl.col(TIMESTAMP).list.get(1).alias(_CUT))
    )
    in_test = (
        interactions.select(MEMBER_ID, TIMESTAMP)
        .join(cuts, on=MEMBER_ID, how="left", maintain_order="left")
        .select((pl.col(TIMESTAMP) >= pl.col(_CUT)).fill_null(False))
        .to_series()
    )
    return _partition(interactions, in_test)


def _latest_per_member(interactions: pl.DataFrame, test_size: pl.Expr) -> Split:
    """Each member's latest ``test_size`` rows (an expression over the member's group, e.g. of
    ``pl.len()``) go to test; timestamp ties are broken by row order."""
    require_columns(interactions, (MEMBER_ID, TIMESTAMP), "interactions")
    latest_rows = (
        interactions.select(MEMBER_ID, TIMESTAMP)
        .with_row_index(_ROW)
        .sort(TIMESTAMP, _ROW)
        .group_by(MEMBER_ID)  # keeps the chronological order within each member
        .agg(pl.col(_ROW).tail(test_size.cast(pl.Int64)))
        .get_column(_ROW)
        .explode()
        .drop_nulls()  # exploding a group with nothing drawn yields a null
    )
    return _partition(interactions, _mask_of_rows(interactions.height, latest_rows))


def ratio_split(
    interactions: pl.DataFrame,
    test_ratio: float,
    by: SplitGroup = "member",
    seed: int = 0,
) -> Split:
    """Within each member (or item), send ``round(test_ratio * n)`` random rows to test.

    Stratifying by group keeps every member's (item's) share of test equal to the ratio instead
    of letting heavy users dominate. ``round`` is Python's (halves go to the even number).
    Groups of one row stay in train; with a ratio above 0.5 a small group can land wholly in
    test. The same input and seed always give the same split.
    """
    _check_test_ratio(test_ratio)
    group = _group_column(by)
    require_columns(interactions, (group,), "interactions")
    shuffled = np.random.default_rng(seed).permutation(interactions.height)
    group_size = pl.len()
    test_size = pl.when(group_size > 1).then((group_size * test_ratio).round(0)).otherwise(0)
    drawn_rows = (
        interactions.select(group)
        .with_row_index(_ROW)[shuffled]
        .group_by(group)  # keeps the shuffled order within each group
        .agg(pl.col(_ROW).head(test_size.cast(pl.Int64)))
        .get_column(_ROW)
        .explode()
        .drop_nulls()  # exploding a group with nothing drawn yields a null
    )
    return _partition(interactions, _mask_of_rows(interactions.height, drawn_rows))


def explicit_split(train_interactions: pl.DataFrame, test_interactions: pl.DataFrame) -> Split:
    """Use a given test file as test; drop train rows that repeat one of its events.

    A row present in both files (same member, item, event and timestamp) would let the model
    see the answer, so it is removed from train and counted in ``describe()``.
    """
    require_columns(train_interactions, _EVENT_KEY, "train interactions")
    require_columns(test_interactions, _EVENT_KEY, "test interactions")
    test_events = test_interactions.select(_EVENT_KEY).unique()
    train = train_interactions.join(
        test_events, on=list(_EVENT_KEY), how="anti", maintain_order="left"
    )
    return Split(
        train=train,
        test=test_interactions,
        removed_from_train=train_interactions.height - train.height,
    )


# --- CLI specs --------------------------------------------------------------------------------


class TemporalSplitSpec(BaseModel):
    """``temporal:YYYY-MM-DD``: a fixed cutoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cutoff: datetime

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`temporal_split` with this cutoff."""
        return temporal_split(interactions, cutoff=self.cutoff)


class LastDaysSplitSpec(BaseModel):
    """``last-days:N``: the last N days are test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int

    @field_validator("days")
    @classmethod
    def _days_positive(cls, value: int) -> int:
        return _check_positive_int(value, "last_days")

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`temporal_split` with ``last_days``."""
        return temporal_split(interactions, last_days=self.days)


class LeaveLastOutSpec(BaseModel):
    """``leave-last:K``: each member's last K interactions are test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int

    @field_validator("k")
    @classmethod
    def _k_positive(cls, value: int) -> int:
        return _check_positive_int(value, "k")

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`leave_last_k_out`."""
        return leave_last_k_out(interactions, k=self.k)


class LastBasketsSpec(BaseModel):
    """``last-baskets:K``: each member's last K orders (and what follows them) are test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int

    @field_validator("k")
    @classmethod
    def _k_positive(cls, value: int) -> int:
        return _check_positive_int(value, "k")

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`leave_last_baskets_out`."""
        return leave_last_baskets_out(interactions, k=self.k)


class LastShareSplitSpec(BaseModel):
    """``last-share:R``: each member's latest share R of interactions is test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float

    @field_validator("share")
    @classmethod
    def _share_in_range(cls, value: float) -> float:
        return _check_test_ratio(value)

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`last_share_split`."""
        return last_share_split(interactions, self.share)


class RatioSplitSpec(BaseModel):
    """``ratio:R[:member|item][:SEED]``: a stratified random share per member or item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_ratio: float
    by: SplitGroup = "member"
    seed: int = 0

    @field_validator("test_ratio")
    @classmethod
    def _ratio_in_range(cls, value: float) -> float:
        return _check_test_ratio(value)

    def split(self, interactions: pl.DataFrame) -> Split:
        """Apply :func:`ratio_split`."""
        return ratio_split(interactions, self.test_ratio, by=self.by, seed=self.seed)


SplitSpec = (
    TemporalSplitSpec
    | LastDaysSplitSpec
    | LeaveLastOutSpec
    | LastBasketsSpec
    | LastShareSplitSpec
    | RatioSplitSpec
)


def parse_split_spec(spec: str) -> SplitSpec:
    """Turn a CLI string such as ``temporal:2024-01-01`` or ``ratio:0.2:item:7`` into a spec.

    The result is a frozen config (loggable, comparable) whose ``split(interactions)`` runs it.
    """
    kind, _, argument = spec.strip().partition(":")
    parser = _SPEC_PARSERS.get(kind)
    if parser is None or not argument:
        raise ConfigError(f"unknown split spec {spec!r}; accepted forms are {_ACCEPTED_FORMS}")
    try:
        return parser(argument)
    except (ValueError, ConfigError) as error:  # int()/float()/fromisoformat and range checks
        raise ConfigError(
            f"bad split spec {spec!r}: {error}; accepted forms are {_ACCEPTED_FORMS}"
        ) from None


def _parse_ratio(argument: str) -> RatioSplitSpec:
    ratio_text, *options = argument.split(":")
    by: SplitGroup = "member"
    if options and options[0] in get_args(SplitGroup):
        by = options.pop(0)  # type: ignore[assignment]
    seed = int(options.pop(0)) if options else 0
    if options:
        raise ValueError(f"unexpected trailing part(s) {':'.join(options)!r}")
    return RatioSplitSpec(test_ratio=float(ratio_text), by=by, seed=seed)


_SPEC_PARSERS: Final[dict[str, Callable[[str], SplitSpec]]] = {
    "temporal": lambda argument: TemporalSplitSpec(cutoff=datetime.fromisoformat(argument)),
    "last-days": lambda argument: LastDaysSplitSpec(days=int(argument)),
    "leave-last": lambda argument: LeaveLastOutSpec(k=int(argument)),
    "last-baskets": lambda argument: LastBasketsSpec(k=int(argument)),
    "last-share": lambda argument: LastShareSplitSpec(share=float(argument)),
    "ratio": _parse_ratio,
}
