"""The training report: one self-contained HTML file, and the same plots as PNG files.

The report travels inside the model artifact and is logged to MLflow, so it must open anywhere,
offline and years later: CSS is inline, plots are base64 PNGs, nothing is fetched. Every text
taken from the metrics (model names, parameters, protocol values) is HTML-escaped, since model
and segment names come from configuration and data.

Plots are drawn on bare :class:`~matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``: no global figure registry to leak, no GUI backend to pick, and reports can
be written from worker threads. ``write_report`` and ``save_figures`` draw from the same
``FIGURES`` table, so the MLflow artifacts are exactly the plots in the report.

Optional parts of the metrics dict (segments, long tail, validation, params, timings) may be
missing: their sections and plots are left out.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from features.members import SEGMENTS

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

_DPI = 100
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1f2933; }
h1 { margin-bottom: 0.25rem; }
h2 { margin-top: 2.5rem; border-bottom: 1px solid #d9e2ec; padding-bottom: 0.25rem; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
thead th { vertical-align: bottom; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #e4e7eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f4f8; }
tr.chosen td { background: #fff3c4; font-weight: 600; }
tr.baseline td { color: #616e7c; font-style: italic; }
.tag { font-size: 0.75rem; padding: 0 0.35rem; border-radius: 0.25rem; margin-left: 0.4rem;
       font-style: normal; font-weight: 400; }
.tag.chosen { background: #f0b429; color: #1f2933; }
.tag.baseline { background: #cbd2d9; color: #1f2933; }
.summary td, .summary th { text-align: left; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; }
figcaption { color: #616e7c; font-size: 0.85rem; }
"""

Metrics = Mapping[str, Any]
PerModel = Mapping[str, Mapping[str, Any]]
TableRenderer = Callable[[PerModel, "str | None"], str]


# -- plots -------------------------------------------------------------------------------------


def _new_figure(width: float, height: float = 3.6) -> Figure:
    """A figure on the Agg canvas (see the module docstring for why not ``pyplot``)."""
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_metric_curves(metrics: Metrics) -> Figure | None:
    """Precision, recall and NDCG against k: shows whether a model's lead holds down the list."""
    models = metrics.get("models") or {}
    if not models:
        return None
    figure = _new_figure(12)
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
    figure = _new_figure(10)
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
    figure = _new_figure(10)
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
    figure = _new_figure(8)
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
FigureTable = Mapping[str, tuple[str, Callable[[Metrics], Figure | None]]]
FIGURES: FigureTable = {
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


def render_figures(metrics: Metrics, figures: FigureTable = FIGURES) -> dict[str, bytes]:
    """PNG bytes of every plot of ``figures`` the metrics have data for, keyed by stem (the
    member report draws its own table, :mod:`training.member_report`)."""
    rendered = {}
    for stem, (_, draw) in figures.items():
        figure = draw(metrics)
        if figure is not None:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            rendered[stem] = buffer.getvalue()
    return rendered


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


def _esc(value: object) -> str:
    return html.escape(str(value))


def _format(value: object) -> str:
    """Floats to 4 decimals, counts with thousands separators, lists comma-separated, the rest
    as text; always escaped."""
    if isinstance(value, bool):
        return _esc(value)
    if isinstance(value, list | tuple):
        return ", ".join(_format(item) for item in value)
    if isinstance(value, Mapping):  # a protocol's shape: "kind = global-time; share = 0.1421"
        return "; ".join(f"{_esc(key)} = {_format(item)}" for key, item in value.items()) or "–"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "–"
    return _esc(value)


def _row(css: str, label: str, cells: Sequence[object]) -> str:
    """A table row: ``label`` is HTML already, ``cells`` are formatted (and escaped) here."""
    values = "".join(f"<td>{_format(value)}</td>" for value in cells)
    return f'<tr class="{css}"><td>{label}</td>{values}</tr>'


def _table(header: Sequence[str], rows: Iterable[tuple[str, str, Sequence[object]]]) -> str:
    """An HTML table of (css class, label HTML, cell values) rows under an escaped header."""
    head = "".join(f"<th>{_breakable(name)}</th>" for name in header)
    body = "".join(_row(*row) for row in rows)
    return _wrapped(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _breakable(name: str) -> str:
    """A header, escaped, that may wrap after ``_`` and before ``@``: ``conversion_proxy@10``
    takes the width of ``conversion_``, not of the whole name."""
    return _esc(name).replace("_", "_<wbr>").replace("@", "<wbr>@")


def _wrapped(table: str) -> str:
    """A table in a box as wide as the page: a table that does not fit scrolls inside its box
    instead of widening the page (eleven metric columns were 1,424 px wide before their
    headers could wrap)."""
    return f'<div class="table-wrap">{table}</div>'


def _model_label(name: str, chosen: str | None) -> tuple[str, str]:
    """CSS class and label HTML marking the chosen model and the popularity baseline."""
    if name == chosen:
        return "chosen", f'{_esc(name)}<span class="tag chosen">chosen</span>'
    if name == BASELINE_MODEL:
        return "baseline", f'{_esc(name)}<span class="tag baseline">popularity baseline</span>'
    return "", _esc(name)


def _per_model_table(per_model: PerModel, chosen: str | None, columns: Sequence[str]) -> str:
    """Rows are models, ``columns`` their values (blank where a model lacks one)."""
    rows = (
        (*_model_label(name, chosen), [values.get(column) for column in columns])
        for name, values in per_model.items()
    )
    return _table(["model", *columns], rows)


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
    return _table(["model", "parameters"], rows)


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
    return _facts_table(facts)


def _facts_table(facts: Mapping[str, object]) -> str:
    """A two-column table of named values."""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_format(v)}</td></tr>" for k, v in facts.items())
    return _wrapped(f'<table class="summary"><tbody>{rows}</tbody></table>')


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
    if "hit_rate" not in test:
        return _facts_table(facts)
    n = test["n"]
    labels = {"popular": "popular (baseline)", "rules_then_popular": "rules, then popular"}
    rows = (
        ("", _esc(labels.get(name, name)), [test["hit_rate"][name], test["recall"][name]])
        for name in test["hit_rate"]
    )
    return _facts_table(facts) + _table(["list", f"hit rate@{n}", f"recall@{n}"], rows)


def _figures_html(metrics: Metrics, figures: FigureTable = FIGURES) -> str:
    """Every plot of ``figures`` as an inline base64 PNG with its caption."""
    parts = []
    for stem, png in render_figures(metrics, figures).items():
        caption = _esc(figures[stem][0])
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "".join(parts)


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
        ("Plots", _figures_html(metrics)),
        ("Bundles: frequently bought together", _rules_section(metrics)),
        ("Tuned parameters", _optional_table(metrics, "params", _params_table)),
        ("Timings", _optional_table(metrics, "timings", _keyed_table)),
    )
    return [(heading, body) for heading, body in sections if body]


def write_report(
    metrics: Metrics, path: Path, title: str = "member-recsys training report"
) -> Path:
    """Write the self-contained HTML report of a training run to ``path`` and return it."""
    return _write_document(path, title, _sections(metrics))


def _write_document(path: Path, title: str, sections: Iterable[tuple[str, str]]) -> Path:
    """A self-contained page of (heading, body HTML) sections, in this report's style."""
    body = "".join(f"<h2>{_esc(heading)}</h2>{html_}" for heading, html_ in sections)
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{_esc(title)}</h1>{body}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
