"""Presets: column mappings and source-specific rules for well-known public data sets.

A preset makes a known file load with no flags: it maps the source's columns to the data
contract, adds the checks that only make sense for that source, and declares which quarantine
reasons are expected there (so that they do not trip the bad-share cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from features import columns as col
from features.checks import RowCheck
from features.errors import ConfigError

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """How to read one known source."""

    name: str
    description: str
    columns: dict[str, str]
    checks: tuple[RowCheck, ...] = ()
    expected_reasons: frozenset[str] = field(default_factory=frozenset)
    timestamp_formats: tuple[str, ...] = ()


def _online_retail() -> Preset:
    order = pl.col(col.ORDER_ID).cast(pl.Utf8).str.strip_chars()
    number = {
        name: pl.col(name).cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
        for name in (col.QUANTITY, col.PRICE)
    }
    cancelled = "cancelled order (invoice number starts with C)"
    checks = (
        RowCheck(col.ORDER_ID, cancelled, order.str.starts_with("C")),
        RowCheck(col.QUANTITY, "quantity is not positive", number[col.QUANTITY] <= 0),
        RowCheck(col.PRICE, "price is not positive", number[col.PRICE] <= 0),
    )
    return Preset(
        name="online-retail",
        description="UCI Online Retail (InvoiceNo, StockCode, Description, Quantity, "
        "InvoiceDate, UnitPrice, CustomerID, Country)",
        columns={
            col.ORDER_ID: "InvoiceNo",
            col.ITEM_ID: "StockCode",
            col.MEMBER_ID: "CustomerID",
            col.TITLE: "Description",
            col.QUANTITY: "Quantity",
            col.PRICE: "UnitPrice",
            col.TIMESTAMP: "InvoiceDate",
        },
        checks=checks,
        # A quarter of the file has no customer; cancellations and adjustments are bookkeeping.
        expected_reasons=frozenset(
            {cancelled, "missing member_id", "quantity is not positive", "price is not positive"}
        ),
        # The UCI spreadsheet's own CSV export writes US dates ("12/1/2010 8:26").
        timestamp_formats=("%m/%d/%Y %H:%M",),
    )


PRESETS: dict[str, Preset] = {"online-retail": _online_retail()}


def get_preset(name: str | None) -> Preset | None:
    """The preset called ``name`` (``None`` for no preset); unknown names list the known ones."""
    if name is None:
        return None
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}"
        ) from None
