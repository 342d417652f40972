"""The training report: one self-contained HTML file, and the same plots as PNG files.

The report travels inside the model artifact and is logged to MLflow, so it is a page of
:mod:`training.html_pages`: it opens offline, its plots are drawn without ``pyplot``, and every
text taken from the metrics (model names, parameters, protocol values) is HTML-escaped, since
model and segment names come from configuration and data. ``write_report`` and
``save_figures`` draw from the same ``FIGURES`` table, so the MLflow artifacts are exactly the
plots in the report.

Optional parts of the metrics dict (segments, long tail, validation, params, timings) may be
missing: their sections and plots are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from features.members import SEGMENTS
from training import html_pages as pages

__all__ = ["FIGURES", "render_figures", "save_figures", "write_report"]

#: ``PopularityRecommender.name``, spelled out because importing ``training.models`` loads every
#: model library (seconds) just to name the baseline.
BASELINE_MODEL = "popular"

#: Test and validation table columns, in order; a column no model reports is left out.
#: ``map@10`` is not shown: it equals ``map``, the name model choice uses (docs/metrics.md).
TABLE_METRICS = (
    "precision@10",
    "recall@10",
    "f1@10",
    "ndcg@10",
    "map",
    "hit_rate@10",
    "coverage@10",
    "novelty@10",
    "diversity@10",
    "ctr_proxy@10",
    "conversion_proxy@10",
)
CURVE_METRICS = ("precision", "recall", "ndcg")
CURVE_KS = (5, 10, 20)
SEGMENT_METRIC = "ndcg@10"
#: Training reports the long tail in popularity deciles.
DECILE_TICKS = range(1, 11)

Metrics = Mapping[str, Any]
PerModel = Mapping[str, Mapping[str, Any]]
TableRenderer = Callable[[PerModel, "str | None"], str]


# -- plots -------------------------------------------------------------------------------------


def _plot_metric_curves(metrics: Metrics) -> Figure | None:
    """Precision, recall and NDCG against k: shows whether a model's lead holds down the list."""
    models = metrics.get("models") or {}
    if not models:
        return None
    figure = pages.new_figure(12)
    for axes, base in zip(figure.subplots(1, len(CURVE_METRICS)), CURVE_METRICS, strict=True):
        for name, values in models.items():
            points = [(k, values[f"{base}@{k}"]) for k in CURVE_KS if f"{base}@{k}" in values]
            if points:
                ks, ys = zip(*points, strict=True)
                axes.plot(ks, ys, marker="o", label=name, **_line_style(name, metrics))
        axes.set(title=f"{base}@k", xlabel="k", xticks=CURVE_KS)
        axes.grid(alpha=0.3)
    _legend(figure)
    return figure


def _plot_segments(metrics: Metrics) -> Figure | None:
    """NDCG@10 per member segment and model: where personalisation pays and where it does not.
    A segment a model was not scored on gets no bar (NaN), not a misleading zero."""
    by_model = {name: per for name, per in (metrics.get("segments") or {}).items() if per}
    if not by_model:
        return None
    segments = _lifecycle_order(_ordered_union(by_model.values()))
    figure = pages.new_figure(10)
    axes = figure.subplots()
    width = 0.8 / len(by_model)
    for offset, (name, per_segment) in enumerate(by_model.items()):
        heights = [per_segment.get(s, {}).get(SEGMENT_METRIC, math.nan) for s in segments]
        positions = [i + (offset - (len(by_model) - 1) / 2) * width for i in range(len(segments))]
        axes.bar(positions, heights, width=width, label=name)
    axes.set_xticks(range(len(segments)), segments)
    axes.set(title=f"{SEGMENT_METRIC} per member segment (test)", ylabel=SEGMENT_METRIC)
    axes.grid(axis="y", alpha=0.3)
    _legend(figure)
    return figure


def _plot_long_tail(metrics: Metrics) -> Figure | None:
    """Share of recommendations per item-popularity decile beside the catalog's own share: a
    model far above the catalog in decile 1 only repeats the bestsellers."""
    long_tail = metrics.get("long_tail") or {}
    catalog, models = long_tail.get("catalog"), long_tail.get("models") or {}
    if not catalog and not models:
        return None
    figure = pages.new_figure(10)
    axes = figure.subplots()
    if catalog:
        axes.bar(_deciles(catalog), catalog, color="#cbd2d9", label="catalog (training events)")
    for name, shares in models.items():
        axes.plot(_deciles(shares), shares, marker="o", label=name, **_line_style(name, metrics))
    axes.set(
        title="Popularity bias: share per item-popularity decile (1 = most popular)",
        xlabel="item popularity decile",
        ylabel="share",
        xticks=DECILE_TICKS,
    )
    axes.grid(axis="y", alpha=0.3)
    _legend(figure)
    return figure


def _plot_segment_sizes(metrics: Metrics) -> Figure | None:
    """Members per segment: how much weight each segment's figures deserve."""
    sizes = metrics.get("segment_sizes") or {}
    if not sizes:
        return None
    segments = _lifecycle_order(sizes)
    counts = [sizes[segment] for segment in segments]
    figure = pages.new_figure(8)
    axes = figure.subplots()
    bars = axes.bar(segments, counts, color="#486581")
    axes.bar_label(bars, labels=[f"{count:,}" for count in counts])
    data_end = (metrics.get("refit") or {}).get("data_end")
    title = "Members per segment" + (f" as of {data_end}" if data_end else "")
    axes.set(title=title, ylabel="members")
    axes.grid(axis="y", alpha=0.3)
    return figure


def _line_style(model: str, metrics: Metrics) -> dict[str, Any]:
    """Chosen model bold, popularity baseline dashed: the two lines a reader compares first."""
    return {
        "linewidth": 2.8 if model == metrics.get("chosen") else 1.5,
        "linestyle": "--" if model == BASELINE_MODEL else "-",
    }


def _deciles(shares: Sequence[float]) -> range:
    """x positions 1..n of per-decile shares; n is not trusted to be 10, so that an odd-length
    list still draws instead of failing the whole report."""
    return range(1, len(shares) + 1)


def _legend(figure: Figure) -> None:
    """One legend outside the plots, only when something is labelled (an empty legend warns)."""
    handles, labels = figure.axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside right upper", fontsize="small")


def _lifecycle_order(segments: Iterable[str]) -> list[str]:
    """Segments from new to churned (training reports them in arbitrary order); names that are
    not lifecycle segments follow in the order given."""
    given = list(segments)
    return [s for s in SEGMENTS if s in given] + [s for s in given if s not in SEGMENTS]


def _ordered_union(mappings: Iterable[Mapping[str, Any]]) -> list[str]:
    """Keys of several mappings in first-seen order (segments a model never saw still count)."""
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))


#: File stem -> (caption, drawing function); the order is the report's.
FIGURES: pages.FigureTable = {
    "metrics_at_k": ("Test precision, recall and NDCG at k = 5, 10, 20", _plot_metric_curves),
    "segments": (
        f"Test {SEGMENT_METRIC} per member segment (segments as of the training split's end)",
        _plot_segments,
    ),
    "long_tail": ("Popularity bias: catalog vs recommended share per decile", _plot_long_tail),
    "segment_sizes": (
        "Members per segment, as of the served data's end (data_end), as exports and "
        "`recsys segments` count them",
        _plot_segment_sizes,
    ),
}


def render_figures(metrics: Metrics, figures: pages.FigureTable = FIGURES) -> dict[str, bytes]:
    """PNG bytes of every plot of ``figures`` (the report's own by default) the metrics have
    data for, keyed by stem."""
    return pages.render_pngs(metrics, figures)


def save_figures(metrics: Metrics, directory: Path) -> list[Path]:
    """Write the report's plots as ``<stem>.png`` into ``directory`` (e.g. for MLflow)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, png in render_figures(metrics).items():
        path = directory / f"{stem}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths


# -- HTML --------------------------------------------------------------------------------------


def _model_label(name: str, chosen: str | None) -> tuple[str, str]:
    """CSS class and label HTML marking the chosen model and the popularity baseline."""
    label = pages.escape(name)
    if name == chosen:
        return "chosen", f'{label}<span class="tag chosen">chosen</span>'
    if name == BASELINE_MODEL:
        return "baseline", f'{label}<span class="tag baseline">popularity baseline</span>'
    return "", label


def _per_model_table(per_model: PerModel, chosen: str | None, columns: Sequence[str]) -> str:
    """Rows are models, ``columns`` their values (blank where a model lacks one)."""
    rows = (
        (*_model_label(name, chosen), [values.get(column) for column in columns])
        for name, values in per_model.items()
    )
    return pages.table(["model", *columns], rows)


def _metrics_table(per_model: PerModel, chosen: str | None) -> str:
    """The ``TABLE_METRICS`` any model reports, in their order."""
    columns = [m for m in TABLE_METRICS if any(m in values for values in per_model.values())]
    return _per_model_table(per_model, chosen, columns)


def _keyed_table(per_model: PerModel, chosen: str | None) -> str:
    """Every key any model has (timings), in first-seen order."""
    return _per_model_table(per_model, chosen, _ordered_union(per_model.values()))


def _params_table(params: PerModel, chosen: str | None) -> str:
    """One row per model with its tuned parameters as ``key = value`` (models share few keys)."""
    rows = (
        (*_model_label(name, chosen), ["; ".join(f"{k} = {v}" for k, v in values.items()) or "–"])
        for name, values in params.items()
    )
    return pages.table(["model", "parameters"], rows)


def _summary(metrics: Metrics) -> str:
    """Chosen model, primary metric (test and validation value) and the protocol."""
    chosen, primary = metrics.get("chosen"), metrics.get("primary_metric")
    test_value = (metrics.get("models") or {}).get(chosen, {}).get(primary)
    validation_value = (metrics.get("validation") or {}).get(chosen, {}).get(primary)
    facts = {
        "chosen model": chosen,
        "primary metric": primary,
        f"{primary} of the chosen model (test)": test_value,
        f"{primary} of the chosen model (validation)": validation_value,
        **{f"protocol: {key}": value for key, value in (metrics.get("protocol") or {}).items()},
    }
    return pages.facts_table(facts)


def _rules_section(metrics: Metrics) -> str:
    """The mined rules and their hit rate on held-out baskets beside popularity."""
    rules = metrics.get("rules")
    if not rules:
        return ""
    test = rules.get("test") or {}
    facts = {
        "rules": rules.get("rules"),
        "training baskets": rules.get("baskets"),
        "itemsets in at least (baskets)": rules.get("min_count"),
        "test baskets with 2+ known items": test.get("test_baskets"),
        "queries (one per item of those baskets)": test.get("anchors"),
        "share of queries with a rule": test.get("coverage"),
    }
    if rules.get("why"):  # few rules passed: what stopped them and which option to change
        facts["why so few"] = rules["why"]
    if "hit_rate" not in test:
        return pages.facts_table(facts)
    n = test["n"]
    labels = {"popular": "popular (baseline)", "rules_then_popular": "rules, then popular"}
    rows = (
        ("", pages.escape(labels.get(name, name)), [test["hit_rate"][name], test["recall"][name]])
        for name in test["hit_rate"]
    )
    return pages.facts_table(facts) + pages.table(["list", f"hit rate@{n}", f"recall@{n}"], rows)


def _optional_table(metrics: Metrics, key: str, render: TableRenderer) -> str:
    """``render`` of ``metrics[key]``, or nothing when the key is missing or empty."""
    return render(metrics[key], metrics.get("chosen")) if metrics.get(key) else ""


def _sections(metrics: Metrics) -> list[tuple[str, str]]:
    """(heading, body HTML) of every section the metrics have data for, in report order."""
    sections = (
        ("Summary", _summary(metrics)),
        ("Test metrics", _optional_table(metrics, "models", _metrics_table)),
        (
            "Validation metrics (used for tuning and choosing the model)",
            _optional_table(metrics, "validation", _metrics_table),
        ),
        ("Plots", pages.figures_html(metrics, FIGURES)),
        ("Bundles: frequently bought together", _rules_section(metrics)),
        ("Tuned parameters", _optional_table(metrics, "params", _params_table)),
        ("Timings", _optional_table(metrics, "timings", _keyed_table)),
    )
    return [(heading, body) for heading, body in sections if body]


def write_report(
    metrics: Metrics, path: Path, title: str = "member-recsys training report"
) -> Path:
    """Write the self-contained HTML report of a training run to ``path`` and return it."""
    return pages.write_document(path, title, _sections(metrics))
