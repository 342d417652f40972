"""The member report: one self-contained HTML file of the member program's figures.

It is drawn from the key figures dict of :func:`training.member_kpis.member_kpis` (as written
to ``kpis.json``) and from nothing else, so that the report and the dashboard's overview, which
reads the same file, show the same numbers. Like the training report (:mod:`training.report`)
it is a page of :mod:`training.html_pages`: it opens offline (CSS inline, plots as base64 PNGs)
and every text from the data is escaped.

A figure whose data is missing (a ``kpis.json`` written before the figure existed) or
meaningless (unscored members, an uninformative churn model) is not drawn; the section says
why instead, in the words of the figures' own ``note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from training import html_pages as pages

__all__ = ["MEMBER_FIGURES", "MEMBER_REPORT_FILE", "write_member_report"]

#: The report's file name in the model artifact (and in the MLflow run).
MEMBER_REPORT_FILE: Final = "members_report.html"
TITLE: Final = "member-recsys member report"
_BAR: Final = "#486581"
_PARTIAL: Final = "#bcccdc"
_LINE: Final = "#f0b429"

Kpis = Mapping[str, Any]


# -- plots -------------------------------------------------------------------------------------


def _plot_segment_sizes(kpis: Kpis) -> Figure | None:
    """Members per segment beside their share of revenue: where the members are is not where
    the money is."""
    sizes = kpis.get("segment_sizes")
    if not sizes:
        return None
    names = [row["segment"] for row in sizes]
    figure = pages.new_figure(11)
    members_axes, revenue_axes = figure.subplots(1, 2)
    bars = members_axes.bar(names, [row["members"] for row in sizes], color=_BAR)
    members_axes.bar_label(bars, labels=[f"{row['members']:,}" for row in sizes])
    members_axes.set(title="Members per segment", ylabel="members")
    shares = [100 * (row["revenue_share"] or 0.0) for row in sizes]
    bars = revenue_axes.bar(names, shares, color=_LINE)
    revenue_axes.bar_label(bars, labels=[f"{share:.1f}%" for share in shares])
    revenue_axes.set(title="Share of revenue up to the reference time", ylabel="% of revenue")
    for axes in (members_axes, revenue_axes):
        axes.grid(axis="y", alpha=0.3)
    return figure


def _plot_rfm_grid(kpis: Kpis) -> Figure | None:
    """Members per R x F cell, coloured by count, each cell labelled with its mean spend."""
    grid = kpis.get("rfm_grid")
    if not grid:
        return None
    r_scores, f_scores = grid["r_scores"], grid["f_scores"]
    counts = np.zeros((len(r_scores), len(f_scores)))
    for cell in grid["cells"]:
        counts[r_scores.index(cell["r_score"]), f_scores.index(cell["f_score"])] = cell["members"]
    figure = pages.new_figure(7, 5)
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues", origin="lower", aspect="auto")
    figure.colorbar(image, ax=axes, label="members")
    middle = counts.max() / 2
    for cell in grid["cells"]:
        row, column = r_scores.index(cell["r_score"]), f_scores.index(cell["f_score"])
        mean = cell["mean_monetary"]
        text = f"{cell['members']:,}" + (f"\n{mean:,.0f}" if mean is not None else "")
        colour = "white" if counts[row, column] > middle else "#1f2933"
        axes.text(column, row, text, ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(len(f_scores)), [str(score) for score in f_scores])
    axes.set_yticks(range(len(r_scores)), [str(score) for score in r_scores])
    axes.set(
        title="Members (and mean spend) by R and F score",
        xlabel="F score (5 = most orders)",
        ylabel="R score (5 = most recent)",
    )
    return figure


def _plot_purchase_frequency(kpis: Kpis) -> Figure | None:
    """Members by their number of orders: how many came once and never again."""
    bins = kpis.get("purchase_frequency")
    if not bins:
        return None
    figure = pages.new_figure(7)
    axes = figure.subplots()
    bars = axes.bar([row["label"] for row in bins], [row["members"] for row in bins], color=_BAR)
    axes.bar_label(bars, labels=[f"{row['members']:,}" for row in bins])
    axes.set(title="Members by number of orders", xlabel="orders", ylabel="members")
    axes.grid(axis="y", alpha=0.3)
    return figure


def _plot_months(kpis: Kpis) -> Figure | None:
    """Revenue bars (a month the data covers in part lighter) and active members per month."""
    months = kpis.get("months")
    if not months:
        return None
    labels = [month["month"] for month in months]
    figure = pages.new_figure(11)
    revenue_axes = figure.subplots()
    colours = [_BAR if month["complete"] else _PARTIAL for month in months]
    revenue_axes.bar(labels, [month["revenue"] for month in months], color=colours)
    revenue_axes.set(title="Revenue and active members by month", ylabel="revenue")
    members_axes = revenue_axes.twinx()
    members_axes.plot(labels, [m["active_members"] for m in months], color=_LINE, marker="o")
    members_axes.set(ylabel="active members")
    members_axes.set_ylim(bottom=0)
    _rotate(revenue_axes)
    revenue_axes.grid(axis="y", alpha=0.3)
    return figure


def _plot_repurchase_and_order_value(kpis: Kpis) -> Figure | None:
    """Monthly repurchase rate and average order value. The trailing window's order value is a
    dashed line; its repurchase rate is not drawn, since two orders in 90 days and two orders
    in one month are different rates."""
    months = [month for month in kpis.get("months") or [] if "repurchase_rate" in month]
    if not months:
        return None
    labels = [month["month"] for month in months]
    figure = pages.new_figure(11)
    rate_axes, value_axes = figure.subplots(1, 2)
    rates = [100 * (month["repurchase_rate"] or 0.0) for month in months]
    rate_axes.plot(labels, rates, marker="o", color=_BAR)
    rate_axes.set(title="Repurchase rate by month (2+ orders in the month)", ylabel="% of buyers")
    values = [month["average_order_value"] or 0.0 for month in months]
    value_axes.plot(labels, values, marker="o", color=_BAR, label="month")
    window_value = (kpis.get("figures") or {}).get("average_order_value")
    if window_value is not None:
        window = f"last {kpis.get('window_days', 0):g} days"
        value_axes.axhline(window_value, color=_LINE, linestyle="--", label=window)
        value_axes.legend(fontsize="small")
    value_axes.set(title="Average order value by month", ylabel="per order")
    for axes in (rate_axes, value_axes):
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        _rotate(axes)
    return figure


def _plot_cohorts(kpis: Kpis) -> Figure | None:
    """One retention curve per join-month cohort."""
    cohorts = kpis.get("cohorts") or {}
    if not cohorts.get("cohorts"):
        return None
    months_after = cohorts["months_after"]
    figure = pages.new_figure(10, 4.2)
    axes = figure.subplots()
    shown = cohorts["cohorts"]
    for index, row in enumerate(shown):
        # Oldest cohort dark, newest light, so that the legend reads as time.
        colour = colormaps["viridis"](index / max(len(shown) - 1, 1))
        values = [np.nan if v is None else 100 * v for v in row["retention"]]
        axes.plot(months_after, values, marker="o", markersize=3, color=colour, label=row["cohort"])
    axes.set(
        title="Retention by join month: share with a purchase k months after joining",
        xlabel="months after the join month",
        ylabel="% of the cohort",
        xticks=months_after,
    )
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small", title="cohort")
    return figure


def _plot_churn(kpis: Kpis) -> Figure | None:
    """Members per tenth of churn risk and per band; only for an informative churn model."""
    churn = kpis.get("churn") or {}
    if not churn.get("histogram"):
        return None
    figure = pages.new_figure(11)
    risk_axes, band_axes = figure.subplots(1, 2, width_ratios=(2, 1))
    histogram = churn["histogram"]
    labels = [f"{row['lower']:.1f}–{row['upper']:.1f}" for row in histogram]
    risk_axes.bar(labels, [row["members"] for row in histogram], color=_BAR)
    horizon = churn.get("horizon_days")
    within = f" in the next {horizon:g} days" if horizon else ""
    risk_axes.set(
        title=f"Members by churn risk (P(no purchase{within}))",
        xlabel="churn risk",
        ylabel="members",
    )
    _rotate(risk_axes)
    bands = churn.get("bands") or []
    bars = band_axes.bar(
        [row["band"] for row in bands], [row["members"] for row in bands], color=_LINE
    )
    band_axes.bar_label(bars, labels=[f"{row['members']:,}" for row in bands])
    band_axes.set(title="Members per churn band", ylabel="members")
    for axes in (risk_axes, band_axes):
        axes.grid(axis="y", alpha=0.3)
    return figure


def _plot_value(kpis: Kpis) -> Figure | None:
    """Expected spend (else purchases) per segment: in total and per member."""
    value = kpis.get("value_by_segment") or {}
    if not value.get("rows"):
        return None
    rows = value["rows"]
    measure = "expected_spend" if value.get("spend_available") else "expected_purchases"
    names = [row["segment"] for row in rows]
    horizon = value.get("horizon_days")
    within = f" (next {horizon:g} days)" if horizon else ""
    figure = pages.new_figure(11)
    panels = (("sum", "total", _BAR, "{:,.0f}"), ("mean", "per member", _LINE, "{:,.2f}"))
    for axes, (suffix, what, colour, label) in zip(figure.subplots(1, 2), panels, strict=True):
        values = [row[f"{measure}_{suffix}"] or 0.0 for row in rows]
        bars = axes.bar(names, values, color=colour)
        axes.bar_label(bars, labels=[label.format(v) for v in values])
        axes.set(title=f"{measure.replace('_', ' ')} {what}{within}", ylabel=measure)
        axes.grid(axis="y", alpha=0.3)
    return figure


def _rotate(axes: Any) -> None:
    """Month labels on their side: 13 ``YYYY-MM`` labels do not fit upright."""
    axes.tick_params(axis="x", labelrotation=60)


#: File stem -> (caption, drawing function); each section below shows its own.
MEMBER_FIGURES: pages.FigureTable = {
    "segment_sizes": ("Members and share of revenue per lifecycle segment", _plot_segment_sizes),
    "rfm_grid": (
        "RFM heat map: members per R score x F score cell (mean spend below the count)",
        _plot_rfm_grid,
    ),
    "purchase_frequency": ("Members by number of orders", _plot_purchase_frequency),
    "months": (
        "Revenue (bars; lighter: a month the data covers in part) and active members by month",
        _plot_months,
    ),
    "repurchase_and_order_value": (
        "Repurchase rate and average order value by month (dashed: the trailing window's value)",
        _plot_repurchase_and_order_value,
    ),
    "cohorts": ("Cohort retention curves by join month", _plot_cohorts),
    "churn": ("Churn-risk distribution and members per churn band", _plot_churn),
    "value_by_segment": ("Expected value by lifecycle segment", _plot_value),
}


# -- HTML --------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return pages.format_number(value, 2)


def _plots(kpis: Kpis, *stems: str) -> str:
    return pages.figures_html(kpis, {stem: MEMBER_FIGURES[stem] for stem in stems})


def _note(text: str | None) -> str:
    return f"<p><em>{pages.escape(text)}</em></p>" if text else ""


def _key_figures(kpis: Kpis) -> str:
    figures = kpis.get("figures") or {}
    window = f"last {kpis.get('window_days', 0):g} days"
    return pages.facts_table({
        "reference time (the data's end)": kpis.get("reference_time"),
        "data from": kpis.get("data_start"),
        "members": figures.get("members"),
        f"active members ({window})": figures.get("active_members"),
        f"orders ({window})": figures.get("orders"),
        f"revenue ({window})": _money(figures.get("revenue")),
        f"average order value ({window})": _money(figures.get("average_order_value")),
        f"repurchase rate ({window})": pages.format_percent(figures.get("repurchase_rate")),
    })  # fmt: skip


def _segments(kpis: Kpis) -> str:
    sizes = kpis.get("segment_sizes") or []
    if not sizes:
        return ""
    rows = (
        ("", row["segment"], [row["members"], pages.format_percent(row["member_share"]),
                              _money(row["revenue"]), pages.format_percent(row["revenue_share"])])
        for row in sizes
    )  # fmt: skip
    header = ["segment", "members", "share of members", "revenue", "share of revenue"]
    return _plots(kpis, "segment_sizes") + pages.table(header, rows)


def _months(kpis: Kpis) -> str:
    months = kpis.get("months") or []
    if not months:
        return ""
    rows = (
        ("" if month["complete"] else "baseline", month["month"], [
            _money(month["revenue"]), month["orders"], month["active_members"],
            _money(month["average_order_value"]),
            pages.format_percent(month.get("repurchase_rate")),
        ])
        for month in months
    )  # fmt: skip
    header = ["month", "revenue", "orders", "active members", "average order value",
              "repurchase rate"]  # fmt: skip
    return (
        _plots(kpis, "months", "repurchase_and_order_value")
        + pages.table(header, rows)
        + _note("Months in italics are covered by the data only in part.")
    )


def _cohorts(kpis: Kpis) -> str:
    cohorts = kpis.get("cohorts") or {}
    if not cohorts:
        return ""
    rows = (
        ("", row["cohort"], [row["members"], *(pages.format_percent(v) for v in row["retention"])])
        for row in cohorts["cohorts"]
    )
    header = ["cohort", "members", *(f"k={k}" for k in cohorts["months_after"])]
    counted = pages.facts_table({
        "members placed by joined_at (members file)": cohorts["members_by_joined_at"],
        "members placed by their first purchase": cohorts["members_by_first_purchase"],
        "members with neither (in no cohort)": cohorts["members_without_cohort"],
        "cohorts with an observed month (the latest shown)": cohorts["cohorts_with_data"],
    })  # fmt: skip
    return _plots(kpis, "cohorts") + pages.table(header, rows) + counted


def _churn(kpis: Kpis) -> str:
    churn = kpis.get("churn")
    if not churn:
        return ""
    bands = pages.table(
        ["churn band", "members"], (("", row["band"], [row["members"]]) for row in churn["bands"])
    )
    facts = pages.facts_table({
        "scored members": churn["scored_members"],
        "mean churn risk": pages.format_percent(churn["mean_risk"]),
        "horizon (days)": churn["horizon_days"],
    })  # fmt: skip
    return (
        _note(churn.get("note"))
        + _plots(kpis, "churn")
        + (facts + bands if churn["available"] else "")
    )


def _value(kpis: Kpis) -> str:
    value = kpis.get("value_by_segment")
    if not value:
        return ""
    rows = (
        ("", row["segment"], [
            row["members"], pages.format_number(row["expected_purchases_sum"], 1),
            pages.format_number(row["expected_purchases_mean"], 2),
            _money(row["expected_spend_sum"]), _money(row["expected_spend_mean"]),
        ])
        for row in value["rows"]
    )  # fmt: skip
    header = ["segment", "members", "expected purchases", "per member", "expected spend",
              "per member"]  # fmt: skip
    table = pages.table(header, rows) if value["rows"] else ""
    return _note(value.get("note")) + _plots(kpis, "value_by_segment") + table


def _definitions(kpis: Kpis) -> str:
    return pages.facts_table(dict(kpis.get("definitions") or {}))


_SECTIONS: Final[Sequence[tuple[str, Callable[[Kpis], str]]]] = (
    ("Key figures", _key_figures),
    ("Segments: members and revenue", _segments),
    ("RFM and purchase frequency", lambda kpis: _plots(kpis, "rfm_grid", "purchase_frequency")),
    ("Months: active members, revenue, repurchase rate, order value", _months),
    ("Cohort retention by join month", _cohorts),
    ("Churn risk", _churn),
    ("Expected value by segment", _value),
    ("What the figures mean", _definitions),
)


def write_member_report(kpis: Kpis, path: Path) -> Path:
    """Write the member report of ``kpis`` (a ``kpis.json`` dict) to ``path`` and return it."""
    sections = ((heading, render(kpis)) for heading, render in _SECTIONS)
    return pages.write_document(path, TITLE, [section for section in sections if section[1]])
