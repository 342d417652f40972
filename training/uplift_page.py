"""The uplift report as a self-contained HTML page: the CLI's ``--html`` and the API's
``GET /v1/reports/campaigns/{id}`` with ``Accept: text/html``.

One plot carries the answer: each figure's absolute uplift with its 95% interval, overall and
per segment and tier, against a zero line, so that "did it work, and for whom" is read at a
glance; the tables give the counts behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from matplotlib.figure import Figure

from training.html_pages import (
    FigureTable,
    document,
    escape,
    facts_table,
    figures_html,
    format_number,
    format_percent,
    new_figure,
    table,
)

__all__ = ["UPLIFT_HEADER", "report_slices", "uplift_page", "uplift_rows"]

_LABELS: Final = {
    "conversion": "bought anything",
    "sent_item_conversion": "bought a sent item",
    "revenue_per_member": "revenue per member",
}


def uplift_page(report: Mapping[str, Any]) -> str:
    """The page of one report (:meth:`training.uplift.UpliftReport.as_dict`)."""
    overall = report["overall"]
    facts = {
        "campaign": report["campaign_id"],
        "family": report["family"],
        "sent": f"{_utc(report['first_sent_at'])} to {_utc(report['last_sent_at'])}",
        "conversion window": f"{report['window_days']:g} days after each member's send",
        "treatment members": overall["treatment"]["members"],
        "holdout members": overall["holdout"]["members"],
        "offers redeemed (treatment)": _redemption(overall["treatment"]),
    }
    sections = [
        ("Campaign", facts_table(facts)),
        ("Uplift", figures_html(report, _FIGURES) + _uplift_table([("all", overall)])),
        ("Groups", _groups_table(overall)),
    ]
    for name, parts in report["breakdowns"].items():
        sections.append((f"By {name}", _uplift_table([(part["key"], part) for part in parts])))
    return document(f"Campaign uplift: {report['campaign_id']}", sections)


def _utc(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M} UTC"


def _redemption(outcome: Mapping[str, Any]) -> str:
    if not outcome["offers"]:
        return "no offers in this campaign"
    share = format_percent(outcome["redemption"]["value"])
    return f"{outcome['redeemed']:,} of {outcome['offers']:,} ({share})"


def report_slices(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(label, slice) of the whole campaign, then of every segment and tier."""
    return [("all", report["overall"])] + [
        (f"{name}: {part['key']}", part)
        for name, parts in report["breakdowns"].items()
        for part in parts
    ]


def uplift_rows(slices: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, ...]]:
    """One row of text per slice and figure: slice, members (treated / holdout), figure,
    treated, holdout, absolute uplift (treated minus holdout: percentage points for a rate)
    and relative uplift, with their 95% intervals; the page's tables and the CLI's show the
    same text."""
    rows = []
    for label, part in slices:
        members = f"{part['treatment']['members']:,} / {part['holdout']['members']:,}"
        for comparison in part["uplift"]:
            metric = comparison["metric"]
            rate = metric != "revenue_per_member"
            treated, held = (
                part[group][metric]["value"] if rate else part[group][metric]
                for group in ("treatment", "holdout")
            )
            rows.append(
                (
                    label,
                    members,
                    _LABELS[metric],
                    _figure(treated, percent=rate),
                    _figure(held, percent=rate),
                    _interval(comparison["absolute"], percent=rate),
                    _interval(comparison["relative"], percent=True),
                )
            )
    return rows


UPLIFT_HEADER: Final = (
    "slice", "members", "figure", "treated", "holdout", "uplift (95%)", "relative (95%)",
)  # fmt: skip


def _figure(value: float | None, *, percent: bool) -> str:
    return format_percent(value) if percent else format_number(value, 2)


def _interval(estimate: Mapping[str, Any], *, percent: bool) -> str:
    if estimate["value"] is None:
        return "–"
    shown = _figure(estimate["value"], percent=percent)
    if estimate["low"] is None:
        return f"{shown} (no interval)"
    low, high = (_figure(estimate[bound], percent=percent) for bound in ("low", "high"))
    return f"{shown} ({low} to {high})"


def _uplift_table(slices: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    rows = [("", escape(row[0]), row[1:]) for row in uplift_rows(slices)]
    return table(UPLIFT_HEADER, rows)


def _groups_table(overall: Mapping[str, Any]) -> str:
    header = ["members", "bought anything", "bought a sent item", "revenue", "offers", "redeemed"]
    rows = [
        (
            "",
            group,
            [
                outcome["members"],
                outcome["converted"],
                outcome["sent_item_converted"],
                format_number(outcome["revenue"], 2),
                outcome["offers"],
                outcome["redeemed"],
            ],
        )
        for group, outcome in ((group, overall[group]) for group in ("treatment", "holdout"))
    ]
    return table(["group", *header], rows)


def _forest(report: Mapping[str, Any]) -> Figure | None:
    """Absolute uplift of both conversions with 95% intervals, overall then per breakdown."""
    slices = report_slices(report)
    metrics = ("sent_item_conversion", "conversion")
    figure = new_figure(9.0, 1.2 + 0.45 * len(slices))
    axes = figure.add_subplot()
    drawn = False
    for offset, (metric, colour) in zip(
        (-0.15, 0.15), zip(metrics, ("#2f80ed", "#f2994a"), strict=True), strict=True
    ):
        for row, (_, part) in enumerate(slices):
            estimate = next(item for item in part["uplift"] if item["metric"] == metric)["absolute"]
            if estimate["low"] is None:
                continue
            value, low, high = (100 * estimate[bound] for bound in ("value", "low", "high"))
            axes.errorbar(
                value, row + offset, xerr=[[value - low], [high - value]], fmt="o",
                color=colour, capsize=3, label=_LABELS[metric] if row == 0 else None,
            )  # fmt: skip
            drawn = True
    if not drawn:
        return None
    axes.axvline(0.0, color="#616e7c", linewidth=1)
    axes.set_yticks(range(len(slices)), [label for label, _ in slices])
    axes.invert_yaxis()
    axes.set_xlabel("treatment minus holdout (percentage points), 95% interval")
    axes.legend(loc="best", fontsize="small")
    return figure


_FIGURES: FigureTable = {
    "uplift": ("Absolute uplift of conversion with 95% intervals", _forest),
}
