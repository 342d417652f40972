"""Self-contained HTML pages with inline plots: the machinery shared by the training report
(:mod:`training.report`) and the member report (:mod:`training.member_report`).

Both reports travel inside the model artifact and are logged to MLflow, so a page must open
anywhere, offline and years later: the CSS is inline, plots are base64 PNGs, nothing is fetched.

Every text that may come from configuration or data (model, segment and cohort names, parameter
and protocol values, definitions) goes through :func:`escape` or :func:`format_value` before it
reaches the page, so a name such as ``<script>`` shows as text instead of running.

Plots are drawn on bare :class:`~matplotlib.figure.Figure` objects with the Agg canvas
(:func:`new_figure`), never through ``pyplot``: no global figure registry to leak, no GUI backend
to pick, and reports can be written from worker threads. A :data:`FigureTable` names each plot
once, so that a page and the PNG files written beside it show exactly the same plots.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "CSS",
    "DPI",
    "FigureTable",
    "document",
    "escape",
    "facts_table",
    "figures_html",
    "format_number",
    "format_percent",
    "format_value",
    "new_figure",
    "render_pngs",
    "table",
    "write_document",
]

#: Pixels per inch of the PNGs: a 12-inch plot is 1,200 px wide, about the page's 72 rem
#: (1,152 px) column, so the widest plots show near their own size.
DPI: Final = 100
#: The one stylesheet of every page. ``tr.chosen`` and ``tr.baseline`` mark a table's row to
#: compare first and a row to read as secondary (the popularity baseline, a partial month).
CSS: Final = """
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

#: File stem -> (caption, drawing function of the page's data dict); the order is the page's.
#: A drawing function returns ``None`` when the data has nothing to plot, and the plot is left
#: out instead of drawn empty.
FigureTable = Mapping[str, tuple[str, Callable[[Mapping[str, Any]], Figure | None]]]


# -- plots -------------------------------------------------------------------------------------


def new_figure(width: float, height: float = 3.6) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas, not ``pyplot``'s (see
    the module docstring for why)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def render_pngs(data: Mapping[str, Any], figures: FigureTable) -> dict[str, bytes]:
    """PNG bytes of every plot of ``figures`` that ``data`` has something to draw for, keyed by
    file stem in the table's order."""
    rendered = {}
    for stem, (_, draw) in figures.items():
        figure = draw(data)
        if figure is not None:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png")
            rendered[stem] = buffer.getvalue()
    return rendered


def figures_html(data: Mapping[str, Any], figures: FigureTable) -> str:
    """Every plot of ``figures`` as an inline base64 PNG under its (escaped) caption, so that
    the page needs no image files beside it."""
    parts = []
    for stem, png in render_pngs(data, figures).items():
        caption = escape(figures[stem][0])
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{caption}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "".join(parts)


# -- text --------------------------------------------------------------------------------------


def escape(value: object) -> str:
    """``value`` as text that HTML shows literally (``<``, ``&`` and quotes escaped)."""
    return html.escape(str(value))


def format_value(value: object) -> str:
    """Floats to 4 decimals, counts with thousands separators, lists comma-separated, the rest
    as text; always escaped."""
    if isinstance(value, bool):
        return escape(value)
    if isinstance(value, list | tuple):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, Mapping):  # a protocol's shape: "kind = global-time; share = 0.1421"
        return (
            "; ".join(f"{escape(key)} = {format_value(item)}" for key, item in value.items()) or "–"
        )
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "–"
    return escape(value)


def format_percent(share: float | None) -> str:
    """A share of 1 as a percentage to one decimal (``0.1234`` -> ``12.3%``); ``–`` for none."""
    return "–" if share is None else f"{100 * share:.1f}%"


def format_number(value: float | None, digits: int) -> str:
    """``value`` to ``digits`` decimals with thousands separators; ``–`` for none."""
    return "–" if value is None else f"{value:,.{digits}f}"


# -- tables and the page -----------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[tuple[str, str, Sequence[object]]]) -> str:
    """An HTML table of ``(css class, label HTML, cell values)`` rows under an escaped header.
    The label is HTML already (it may carry a tag); the cells are formatted and escaped here."""
    head = "".join(f"<th>{_breakable(name)}</th>" for name in header)
    body = "".join(_row(*row) for row in rows)
    return _wrapped(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def facts_table(facts: Mapping[str, object]) -> str:
    """A two-column table of named values, names and values escaped."""
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{format_value(v)}</td></tr>" for k, v in facts.items()
    )
    return _wrapped(f'<table class="summary"><tbody>{rows}</tbody></table>')


def document(title: str, sections: Iterable[tuple[str, str]]) -> str:
    """A self-contained page of ``(heading, body HTML)`` sections in :data:`CSS`'s style (the
    API answers some pages without a file)."""
    body = "".join(f"<h2>{escape(heading)}</h2>{html_}" for heading, html_ in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def write_document(path: Path, title: str, sections: Iterable[tuple[str, str]]) -> Path:
    """Write :func:`document` to ``path`` (creating its folder) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document(title, sections), encoding="utf-8")
    return path


def _row(css: str, label: str, cells: Sequence[object]) -> str:
    """A table row: ``label`` is HTML already, ``cells`` are formatted (and escaped) here."""
    values = "".join(f"<td>{format_value(value)}</td>" for value in cells)
    return f'<tr class="{css}"><td>{label}</td>{values}</tr>'


def _breakable(name: str) -> str:
    """A header, escaped, that may wrap after ``_`` and before ``@``: ``conversion_proxy@10``
    takes the width of ``conversion_``, not of the whole name."""
    return escape(name).replace("_", "_<wbr>").replace("@", "<wbr>@")


def _wrapped(html_table: str) -> str:
    """A table in a box as wide as the page: a table that does not fit scrolls inside its box
    instead of widening the page (eleven metric columns were 1,424 px wide before their
    headers could wrap)."""
    return f'<div class="table-wrap">{html_table}</div>'
