"""The shape of a train/test split, read off the two frames, and a validation split of that shape.

Tuning is only as honest as its validation split is like the test: a model chosen on the last
weeks of a log is the wrong choice for a test that is a random quarter of every item's ratings,
and a global last-window validation misjudges a test made of each member's latest events. When
the test comes as a file (a published protocol), nobody tells us its shape, so it is inferred:

* **global time** — test events come after the training events (at most
  :data:`TIME_TOLERANCE` of them before the last training event): validation is the last
  stretch of training time as long as the test's, shortened when it would take a larger share
  of the training events than the test took of all events;
* **member time** — each member's test events come after that member's training events, while
  the windows of different members overlap: validation is each member's last events, the same
  number per member when the test holds the same number for (nearly) every member
  (leave-last-K), else the same share;
* **random** — test events are interleaved in time with training events: a random split of the
  test's share, stratified by item when the test's share is even per item (a stratified split
  puts ``round(share * n)`` of each group in test), else by member.

A next-basket test (``recsys train --target next-basket``) is often a number of whole baskets
per member: each member's first order after a date (a global time cut) or their last order (a
per-member cut, ``last-baskets:K``). Asked to look for it, the inference reads that count off the
test's orders (:attr:`SplitShape.orders_per_member`), and validation keeps the same number of
baskets per member after its own cut: a validation test of whole weeks would reward models for
a member's second and third baskets, which the test never asks for.

A split made here from a spec (``--split``) has a known shape; :func:`shape_of_spec` gives it
without looking at the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import polars as pl

from features.baskets import order_key
from features.columns import EVENT, ITEM_ID, MEMBER_ID, PURCHASE, TIMESTAMP
from features.errors import DataError
from features.splits import (
    LastBasketsSpec,
    LastDaysSplitSpec,
    LastShareSplitSpec,
    LeaveLastOutSpec,
    RatioSplitSpec,
    Split,
    SplitGroup,
    SplitSpec,
    TemporalSplitSpec,
    order_starts,
    temporal_split,
)

__all__ = [
    "EVEN_GROUP_SHARE",
    "TIME_TOLERANCE",
    "ShapeKind",
    "SplitShape",
    "carve_validation",
    "first_orders",
    "infer_split_shape",
    "shape_numbers",
    "shape_of_spec",
]

ShapeKind = Literal["global-time", "member-time", "random"]

#: Share of test events allowed to precede the time cut (the global last training event, or the
#: member's own) and still count as a time cut: a few same-second ties or clock skew in a
#: published file should not turn a time split into a "random" one.
TIME_TOLERANCE: Final = 0.01
#: A group stratifies a random split when at least this share of its groups (of at least
#: :data:`_MIN_GROUP_ROWS` rows) hold ``round(share * n) +- 1`` test rows: a random split that
#: is not stratified by the group misses that band for most large groups.
EVEN_GROUP_SHARE: Final = 0.9
#: The share of test members that must hold the same number of test events for a member-time
#: split to be read as leave-last-K rather than a share of each member's events.
_SAME_COUNT_SHARE: Final = 0.9
_MIN_GROUP_ROWS: Final = 10
_TEST: Final = "__in_test"


@dataclass(frozen=True)
class SplitShape:
    """What kind of split the test is, and the numbers a validation split of that kind needs.

    ``share``: the test's share of all events (of its members' events for member time).
    ``window``: the test's time span (global time). ``per_member``: the number of test events
    every member holds (member time read as leave-last-K). ``orders_per_member``: the number of
    whole orders every member's test holds (a next-basket test: the first orders after the cut
    for global time, the last orders for member time). ``group``: what a random split is
    stratified by. ``evidence``: the measurements the shape was read from, for the record.
    """

    kind: ShapeKind
    share: float
    inferred: bool
    window: timedelta | None = None
    per_member: int | None = None
    orders_per_member: int | None = None
    group: SplitGroup | None = None
    evidence: dict[str, float] | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready record (metrics.json's ``protocol.validation_shape``)."""
        record = {key: value for key, value in asdict(self).items() if value is not None}
        if self.window is not None:
            record["window_days"] = self.window / timedelta(days=1)
            del record["window"]
        return record


def shape_numbers(record: dict[str, Any]) -> str:
    """The numbers of a shape record (:meth:`SplitShape.describe`) in one line, e.g. "share
    0.0776, window_days 29.6", for the console; the evidence stays in metrics.json."""
    return ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in record.items()
        if key not in ("kind", "inferred", "evidence", "spec")
    )


def shape_of_spec(spec: SplitSpec, split: Split) -> SplitShape:
    """The shape of a split that ``spec`` made (no inference: the spec says it)."""
    share = _test_share(split.train, split.test)
    if isinstance(spec, TemporalSplitSpec | LastDaysSplitSpec):
        return SplitShape("global-time", share, inferred=False, window=_span(split.test))
    if isinstance(spec, LeaveLastOutSpec):
        return SplitShape("member-time", share, inferred=False, per_member=spec.k)
    if isinstance(spec, LastBasketsSpec):
        return SplitShape("member-time", share, inferred=False, orders_per_member=spec.k)
    if isinstance(spec, LastShareSplitSpec):
        return SplitShape("member-time", spec.share, inferred=False)
    return SplitShape("random", spec.test_ratio, inferred=False, group=spec.by)


def infer_split_shape(train: pl.DataFrame, test: pl.DataFrame, baskets: bool = False) -> SplitShape:
    """Read the shape of a given train/test pair from the event times and group counts; with
    ``baskets``, also whether a time-cut test holds the same number of orders per member."""
    shape = _time_or_random_shape(train, test)
    if not baskets or shape.kind == "random":
        return shape
    orders, same_count = _orders_per_member(test)
    evidence = {**(shape.evidence or {}), "test_members_with_the_modal_order_count": same_count}
    if same_count < _SAME_COUNT_SHARE:
        return replace(shape, evidence=evidence)
    return replace(shape, per_member=None, orders_per_member=orders, evidence=evidence)


def _orders_per_member(test: pl.DataFrame) -> tuple[int, float]:
    """The most common number of orders per test member, and the share of members with it."""
    counts = order_starts(test).group_by(MEMBER_ID).len(name="__orders")
    if counts.height == 0:
        return 0, 0.0
    modal, members = (
        counts.group_by("__orders").len().sort(["len", "__orders"], descending=[True, False]).row(0)
    )
    return int(modal), members / counts.height


def _time_or_random_shape(train: pl.DataFrame, test: pl.DataFrame) -> SplitShape:
    if train.height == 0 or test.height == 0:
        raise DataError(
            f"cannot infer the shape of a split with {train.height} training and {test.height} "
            "test events; both files need events (or give --validation SPEC)"
        )
    last_train = train.get_column(TIMESTAMP).max()
    before_global_cut = float((test.get_column(TIMESTAMP) < last_train).mean())  # type: ignore[operator]
    evidence = {"test_events_before_last_train_event": before_global_cut}
    if before_global_cut <= TIME_TOLERANCE:
        share = _test_share(train, test)
        return SplitShape(
            "global-time", share, inferred=True, window=_span(test), evidence=evidence
        )
    before_member_cut, counts = _member_time_evidence(train, test)
    evidence["test_events_before_member_last_train_event"] = before_member_cut
    if before_member_cut <= TIME_TOLERANCE:
        return _member_time_shape(counts, evidence)
    return _random_shape(train, test, evidence)


def _member_time_evidence(train: pl.DataFrame, test: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Share of test events before their member's last training event, and per test member
    their test and training event counts."""
    last_seen = train.group_by(MEMBER_ID).agg(
        pl.col(TIMESTAMP).max().alias("__last"), pl.len().alias("__train")
    )
    joined = test.select(MEMBER_ID, TIMESTAMP).join(last_seen, on=MEMBER_ID, how="left")
    early = (pl.col(TIMESTAMP) < pl.col("__last")).fill_null(False)
    share_early = float(joined.select(early.mean()).item())
    counts = joined.group_by(MEMBER_ID).agg(
        pl.len().alias("__test"), pl.col("__train").first().fill_null(0)
    )
    return share_early, counts


def _member_time_shape(counts: pl.DataFrame, evidence: dict[str, float]) -> SplitShape:
    known = counts.filter(pl.col("__train") > 0)
    if known.height == 0:
        raise DataError(
            "no member of the test file has events in the training file (a cold-start "
            "protocol): its shape cannot be carved from train; give --validation SPEC"
        )
    share = float(known["__test"].sum() / (known["__test"].sum() + known["__train"].sum()))
    modal_count, members = (
        known.group_by("__test").len().sort(["len", "__test"], descending=[True, False]).row(0)
    )
    same_count = members / known.height
    evidence["test_members_with_the_modal_count"] = same_count
    if same_count >= _SAME_COUNT_SHARE:
        return SplitShape(
            "member-time", share, inferred=True, per_member=int(modal_count), evidence=evidence
        )
    return SplitShape("member-time", share, inferred=True, evidence=evidence)


def _random_shape(
    train: pl.DataFrame, test: pl.DataFrame, evidence: dict[str, float]
) -> SplitShape:
    share = _test_share(train, test)
    evenness = {group: _evenness(train, test, column, share) for group, column in
                (("member", MEMBER_ID), ("item", ITEM_ID))}  # fmt: skip
    evidence.update({f"{group}s_with_even_share": value for group, value in evenness.items()})
    by_item = evenness["item"] >= EVEN_GROUP_SHARE and evenness["item"] > evenness["member"]
    group: SplitGroup = "item" if by_item else "member"
    return SplitShape("random", share, inferred=True, group=group, evidence=evidence)


def _evenness(train: pl.DataFrame, test: pl.DataFrame, column: str, share: float) -> float:
    """Share of the large groups whose test count is within one of ``round(share * n)``."""
    rows = pl.concat(
        [train.select(column).with_columns(pl.lit(False).alias(_TEST)),
         test.select(column).with_columns(pl.lit(True).alias(_TEST))]
    )  # fmt: skip
    groups = (
        rows.group_by(column)
        .agg(pl.len().alias("__n"), pl.col(_TEST).sum().alias("__test"))
        .filter(pl.col("__n") >= _MIN_GROUP_ROWS)
    )
    if groups.height == 0:
        return 0.0
    expected = (pl.col("__n") * share).round(0)
    return float(groups.select(((pl.col("__test") - expected).abs() <= 1).mean()).item())


def carve_validation(train: pl.DataFrame, shape: SplitShape, seed: int = 0) -> Split:
    """A validation split of ``train`` alone, shaped like ``shape`` (see the module docstring)."""
    if shape.kind == "random":
        return RatioSplitSpec(test_ratio=shape.share, by=shape.group or "member", seed=seed).split(
            train
        )
    if shape.kind == "member-time":
        if shape.orders_per_member is not None:
            return LastBasketsSpec(k=shape.orders_per_member).split(train)
        if shape.per_member is not None:
            return LeaveLastOutSpec(k=shape.per_member).split(train)
        return LastShareSplitSpec(share=shape.share).split(train)
    split = temporal_split(train, cutoff=_validation_cutoff(train, shape))
    if shape.orders_per_member is None:
        return split
    return Split(train=split.train, test=first_orders(split.test, shape.orders_per_member))


def first_orders(interactions: pl.DataFrame, k: int) -> pl.DataFrame:
    """The purchase rows of each member's first ``k`` orders: the next baskets after a cut."""
    starts = order_starts(interactions)
    kept = starts.group_by(MEMBER_ID).agg(pl.col(TIMESTAMP).head(k).max().alias("__last_start"))
    purchases = interactions.filter(pl.col(EVENT) == PURCHASE)
    keyed = purchases.with_columns(order_key(purchases.columns).alias("__order"))
    first = starts.join(kept, on=MEMBER_ID).filter(pl.col(TIMESTAMP) <= pl.col("__last_start"))
    return keyed.join(
        first.select(MEMBER_ID, "__order"), on=[MEMBER_ID, "__order"], how="semi"
    ).drop("__order")


def _validation_cutoff(train: pl.DataFrame, shape: SplitShape) -> datetime:
    """The start of the last training window as long as the test's, moved later when that
    window would hold a larger share of the training events than the test held of all."""
    stamps = train.get_column(TIMESTAMP)
    latest = stamps.max()
    if not isinstance(latest, datetime):
        raise DataError("cannot carve a validation window from training data with no events")
    by_length = latest - (shape.window or timedelta(0))
    by_share = stamps.quantile(1.0 - shape.share, interpolation="higher")
    return max(by_length, by_share) if isinstance(by_share, datetime) else by_length


def _test_share(train: pl.DataFrame, test: pl.DataFrame) -> float:
    return test.height / max(train.height + test.height, 1)


def _span(test: pl.DataFrame) -> timedelta:
    stamps = test.get_column(TIMESTAMP)
    first, last = stamps.min(), stamps.max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        return timedelta(0)
    return last - first
