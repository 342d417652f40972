"""How the members spread: the RFM grid, orders per member, churn risk and expected value.

Part of the member program's key figures (:mod:`training.member_kpis`), computed once at
training time from the member profile frame, one row per member as of the reference time. The
figures are plain lists of numbers so that the dashboard and the member report
(:mod:`training.member_report`) draw the same ones:

* **RFM grid**: members and mean monetary value per (R score, F score) cell, 5 x 5, empty cells
  included (mean null), so that a heat map has a fixed shape;
* **purchase frequency**: members by orders up to the reference time, in :data:`ORDER_BINS`
  (0 = never bought, which members of the members file without purchases are);
* **churn risk** (``churn_risk``, ``churn_band`` of :mod:`training.member_models`): members per
  tenth of 0..1 and per band. When the profiles carry no risk, or the churn model was not
  informative (every band ``uninformative``: every scorable member has the base rate), no
  histogram is given and ``note`` says why: a spike at the base rate would read as a finding;
* **value by segment**: sum and mean of ``expected_purchases`` and ``expected_spend`` per
  lifecycle segment (spend null without prices).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import polars as pl

from features.columns import CHURN_BAND, CHURN_RISK, EXPECTED_PURCHASES, EXPECTED_SPEND
from features.frames import require_columns
from features.members import F_SCORE, FREQUENCY, MONETARY, R_SCORE, SEGMENT, SEGMENTS

__all__ = [
    "CHURN_BAND",
    "CHURN_BANDS",
    "CHURN_BINS",
    "CHURN_RISK",
    "EXPECTED_PURCHASES",
    "EXPECTED_SPEND",
    "ORDER_BINS",
    "UNINFORMATIVE",
    "churn_distribution",
    "purchase_frequency",
    "rfm_grid",
    "value_by_segment",
]

UNINFORMATIVE: Final = "uninformative"
#: Bands, lowest risk first; a band outside these follows them.
CHURN_BANDS: Final = ("low", "medium", "high", UNINFORMATIVE)
#: The churn-risk histogram's equal bins over 0..1 (the last one includes 1).
CHURN_BINS: Final = 10
#: Orders per member: (lowest, highest) of each bin, None = no upper bound.
ORDER_BINS: Final[tuple[tuple[int, int | None], ...]] = (
    (0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, None),
)  # fmt: skip
_SCORES: Final = range(1, 6)
_VALUE_KEYS: Final = (
    "expected_purchases_sum", "expected_purchases_mean", "expected_spend_sum",
    "expected_spend_mean",
)  # fmt: skip


def rfm_grid(profiles: pl.DataFrame) -> dict[str, Any]:
    """Members and mean monetary value per R score x F score cell (all 25, R rows 1..5)."""
    require_columns(profiles, (R_SCORE, F_SCORE, MONETARY), "member profiles")
    counted = profiles.group_by(R_SCORE, F_SCORE).agg(
        pl.len().alias("members"), pl.col(MONETARY).mean().alias("mean_monetary")
    )
    cells = {(row[R_SCORE], row[F_SCORE]): row for row in counted.iter_rows(named=True)}
    empty = {"members": 0, "mean_monetary": None}
    return {
        "r_scores": list(_SCORES),
        "f_scores": list(_SCORES),
        "cells": [
            {
                "r_score": r,
                "f_score": f,
                "members": int(cells.get((r, f), empty)["members"]),
                "mean_monetary": _float(cells.get((r, f), empty)["mean_monetary"]),
            }
            for r in _SCORES
            for f in _SCORES
        ],
    }


def purchase_frequency(profiles: pl.DataFrame) -> list[dict[str, Any]]:
    """Members per :data:`ORDER_BINS` bin of their order count."""
    require_columns(profiles, (FREQUENCY,), "member profiles")
    orders = profiles.get_column(FREQUENCY)
    bins = []
    for lowest, highest in ORDER_BINS:
        inside = orders >= lowest if highest is None else orders.is_between(lowest, highest)
        label = f"{lowest}+" if highest is None else str(lowest)
        if highest is not None and highest > lowest:
            label = f"{lowest}-{highest}"
        bins.append({
            "label": label, "min_orders": lowest, "max_orders": highest,
            "members": int(inside.sum()),
        })  # fmt: skip
    return bins


def churn_distribution(profiles: pl.DataFrame, horizon_days: float | None) -> dict[str, Any]:
    """Members per tenth of churn risk and per band, or why there is no distribution."""
    risk = _scores(profiles, CHURN_RISK)
    base: dict[str, Any] = {"horizon_days": horizon_days, "histogram": [], "bands": []}
    if risk is None:
        return {
            **base, "available": False, "informative": None, "scored_members": 0,
            "mean_risk": None,
            "note": "the members were not scored (the profiles carry no churn_risk): "
            "there is no churn-risk distribution to show",
        }  # fmt: skip
    bands = profiles.get_column(CHURN_BAND) if CHURN_BAND in profiles.columns else None
    band_counts = _band_counts(bands) if bands is not None else []
    informative = not (band_counts and all(row["band"] == UNINFORMATIVE for row in band_counts))
    scored = risk.drop_nulls()
    summary = {
        **base, "available": True, "informative": informative, "scored_members": scored.len(),
        "mean_risk": _float(scored.mean()), "bands": band_counts,
    }  # fmt: skip
    if not informative:
        return {
            **summary,
            "note": "the churn model beat neither a constant nor recency alone on validation, "
            "so every scored member carries the base rate (mean_risk): a distribution would "
            "mean nothing and none is drawn",
        }
    index = (scored * CHURN_BINS).floor().clip(0, CHURN_BINS - 1).cast(pl.Int64)
    per_bin = index.value_counts()
    counts = dict(zip(per_bin.get_column(index.name), per_bin.get_column("count"), strict=True))
    histogram = [
        {"lower": i / CHURN_BINS, "upper": (i + 1) / CHURN_BINS, "members": int(counts.get(i, 0))}
        for i in range(CHURN_BINS)
    ]
    return {**summary, "histogram": histogram, "note": None}


def value_by_segment(profiles: pl.DataFrame, horizon_days: float | None) -> dict[str, Any]:
    """Sum and mean of expected purchases and spend per lifecycle segment."""
    purchases = _scores(profiles, EXPECTED_PURCHASES)
    base: dict[str, Any] = {"horizon_days": horizon_days, "rows": []}
    if purchases is None:
        return {
            **base, "available": False, "spend_available": False,
            "note": "the members were not scored (the profiles carry no expected_purchases): "
            "there is no expected value to show",
        }  # fmt: skip
    spend_available = _scores(profiles, EXPECTED_SPEND) is not None
    valued = (EXPECTED_PURCHASES, EXPECTED_SPEND) if spend_available else (EXPECTED_PURCHASES,)
    per_segment = profiles.group_by(SEGMENT).agg(
        pl.len().alias("members"),
        *(pl.col(name).sum().alias(f"{name}_sum") for name in valued),
        *(pl.col(name).mean().alias(f"{name}_mean") for name in valued),
    )
    rows = {row[SEGMENT]: row for row in per_segment.iter_rows(named=True)}
    ordered = [s for s in SEGMENTS if s in rows] + [s for s in rows if s not in SEGMENTS]
    return {
        **base,
        "available": True,
        "spend_available": spend_available,
        "rows": [
            {
                "segment": segment,
                "members": int(rows[segment]["members"]),
                **{key: _float(rows[segment].get(key)) for key in _VALUE_KEYS},
            }
            for segment in ordered
        ],
        "note": None
        if spend_available
        else "the data has no prices, so expected spend is unknown; expected purchases are shown",
    }


def _scores(profiles: pl.DataFrame, column: str) -> pl.Series | None:
    """The score column, or None when the profiles lack it or it is null throughout (scoring
    was not run or failed)."""
    if column not in profiles.columns:
        return None
    values = profiles.get_column(column).cast(pl.Float64)
    return None if values.null_count() == values.len() else values


def _band_counts(bands: pl.Series) -> list[dict[str, Any]]:
    """Members per band, bands in :data:`CHURN_BANDS` order, then any other names."""
    counts = bands.drop_nulls().value_counts()
    found = dict(zip(counts.get_column(bands.name), counts.get_column("count"), strict=True))
    return [{"band": band, "members": int(found[band])} for band in _band_order(found)]


def _band_order(found: Iterable[str]) -> list[str]:
    names = list(found)
    return [b for b in CHURN_BANDS if b in names] + sorted(b for b in names if b not in CHURN_BANDS)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
