"""The HTML training report and its PNG plots (training/report.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from training.report import FIGURES, save_figures, write_report

MODELS = ("popular", "item_knn", "ease")
SEGMENTS = ("new", "active", "at-risk", "sleeping", "churned")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _figures(seed: float) -> dict[str, float]:
    """A full set of metric keys at k = 5, 10, 20 with distinct values."""
    bases = ("precision", "recall", "f1", "ndcg", "map", "hit_rate", "coverage", "novelty")
    values = {
        f"{base}@{k}": round(seed + i / 100 + k / 1000, 4)
        for i, base in enumerate((*bases, "diversity", "ctr_proxy", "conversion_proxy"))
        for k in (5, 10, 20)
    }
    return {**values, "map": values["map@10"]}


def training_metrics(models: tuple[str, ...] = MODELS, chosen_ndcg: float = 0.3) -> dict[str, Any]:
    """A metrics dict shaped like ``run_training``'s, the chosen model ``models[-1]`` with test
    ndcg@10 ``chosen_ndcg``; also used by the tracking tests."""
    chosen = models[-1]
    test = {name: _figures(0.1 + i / 10) for i, name in enumerate(models)}
    test[chosen]["ndcg@10"] = chosen_ndcg
    return {
        "chosen": chosen,
        "primary_metric": "ndcg@10",
        "protocol": {
            "split": "temporal:2011-09-01",
            "train_rows": 120_000,
            "test_rows": 9_000,
            "evaluated_members": 800,
            "validation": "last-days:90",
            "relevant_events": ["purchase"],
        },
        "models": test,
        "validation": {name: _figures(0.05 + i / 10) for i, name in enumerate(models)},
        "params": {name: {"l2": 500.0, "window_days": 30} for name in models},
        "segments": {
            name: {s: {"precision@10": 0.1, "ndcg@10": 0.2, "members": 50} for s in SEGMENTS[1:]}
            for name in models
        },
        "segment_sizes": dict(zip(SEGMENTS, (10, 300, 120, 80, 40), strict=True)),
        "long_tail": {
            "catalog": [0.4, 0.2, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.02, 0.01],
            "models": {name: [0.1] * 10 for name in models},
        },
        "timings": {
            name: {"tune_s": 1.5, "trials": 8, "fit_s": 0.2, "evaluate_s": 0.1} for name in models
        },
        "rules": {
            "baskets": 4_000,
            "min_count": 20,
            "rules": 321,
            "test": {
                "n": 5,
                "test_baskets": 700,
                "anchors": 2_100,
                "coverage": 0.61,
                "hit_rate": {"rules": 0.31, "rules_then_popular": 0.47, "popular": 0.29},
                "recall": {"rules": 0.12, "rules_then_popular": 0.18, "popular": 0.1},
            },
        },
    }


def _minimal_metrics() -> dict[str, Any]:
    """Only what every run has: no validation, params, segments, long tail or timings."""
    metrics = training_metrics()
    return {key: metrics[key] for key in ("chosen", "primary_metric", "models")}


def _report(tmp_path: Path, metrics: dict[str, Any], **kwargs: str) -> str:
    return write_report(metrics, tmp_path / "out" / "report.html", **kwargs).read_text()


def _rows(html: str, css: str) -> list[str]:
    return re.findall(rf'<tr class="{css}">(.*?)</tr>', html)


def test_report_has_summary_tables_and_one_image_per_plot(tmp_path: Path) -> None:
    html = _report(tmp_path, training_metrics())

    for heading in ("Summary", "Test metrics", "Validation metrics", "Tuned parameters"):
        assert f"<h2>{heading}" in html
    assert "temporal:2011-09-01" in html and "120,000" in html  # the protocol
    assert html.count("<img ") == len(FIGURES)
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "l2 = 500.0" in html


def test_report_shows_bundle_rules_beside_popularity(tmp_path: Path) -> None:
    html = _report(tmp_path, training_metrics())

    section = html[html.index("<h2>Bundles") :]
    assert "321" in section and "4,000" in section and "0.6100" in section
    assert "<th>hit rate<wbr>@5</th>" in section and "<th>recall<wbr>@5</th>" in section
    assert "<td>rules, then popular</td><td>0.4700</td><td>0.1800</td>" in section
    assert "<td>popular (baseline)</td><td>0.2900</td>" in section


def test_report_marks_chosen_model_and_baseline_in_every_table(tmp_path: Path) -> None:
    html = _report(tmp_path, training_metrics())

    chosen_rows, baseline_rows = _rows(html, "chosen"), _rows(html, "baseline")
    # test, validation, params and timings tables each have one row per model
    assert len(chosen_rows) == len(baseline_rows) == 4
    assert all(row.startswith("<td>ease<") for row in chosen_rows)
    assert all("popularity baseline" in row for row in baseline_rows)
    assert "<th>ndcg<wbr>@10</th>" in html and "<th>coverage<wbr>@10</th>" in html
    assert "<th>conversion_<wbr>proxy<wbr>@10</th>" in html and "<th>map</th>" in html


def test_report_is_self_contained(tmp_path: Path) -> None:
    html = _report(tmp_path, training_metrics())

    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<link" not in html and "<script" not in html


def test_report_escapes_model_names_protocol_values_and_title(tmp_path: Path) -> None:
    metrics = training_metrics(models=("popular", "<b>evil</b>"))
    metrics["protocol"]["split"] = "a & b"

    html = _report(tmp_path, metrics, title="<i>report</i>")

    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html
    assert "a &amp; b" in html
    assert "<title>&lt;i&gt;report&lt;/i&gt;</title>" in html


def test_report_leaves_out_sections_whose_data_is_missing(tmp_path: Path) -> None:
    html = _report(tmp_path, _minimal_metrics())

    assert "<h2>Test metrics" in html
    assert "Validation metrics" not in html and "Tuned parameters" not in html
    assert html.count("<img ") == 1  # only the metric@k curves have data


def test_report_without_diversity_drops_the_column(tmp_path: Path) -> None:
    metrics = training_metrics()
    for values in (*metrics["models"].values(), *metrics["validation"].values()):
        for k in (5, 10, 20):
            del values[f"diversity@{k}"]

    assert "diversity" not in _report(tmp_path, metrics)


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [(training_metrics(), set(FIGURES)), (_minimal_metrics(), {"metrics_at_k"})],
    ids=["full", "minimal"],
)
def test_save_figures_writes_a_png_per_plot_with_data(
    tmp_path: Path, metrics: dict[str, Any], expected: set[str]
) -> None:
    paths = save_figures(metrics, tmp_path / "figures")

    assert {path.stem for path in paths} == expected
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in paths)


def test_report_shows_dicts_as_key_value_pairs(tmp_path: Path) -> None:
    metrics = training_metrics()
    metrics["protocol"]["validation_shape"] = {"kind": "global-time", "share": 0.1421}

    html = _report(tmp_path, metrics)

    assert "kind = global-time; share = 0.1421" in html
    assert "{&#x27;" not in html and "{'" not in html


def test_report_tables_fit_a_laptop_screen_in_a_real_browser(tmp_path: Path) -> None:
    """Eleven metric columns once made the page 1,488 px wide; at 1,280 px nothing may scroll
    sideways, neither the page nor a table in its box."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    models = ("popular", "item_knn", "als", "ease", "content", "rerank")
    report = write_report(training_metrics(models=models), tmp_path / "report.html")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.resolve().as_uri())
            page_width = page.evaluate("document.documentElement.scrollWidth")
            boxes = page.evaluate(
                "Array.from(document.querySelectorAll('.table-wrap'))"
                ".map(box => [box.scrollWidth, box.clientWidth])"
            )
        finally:
            browser.close()
    assert page_width <= 1280
    assert len(boxes) >= 6 and all(scrolled <= shown for scrolled, shown in boxes), boxes


def test_report_says_why_when_few_rules_passed(tmp_path: Path) -> None:
    metrics = training_metrics()
    metrics["rules"]["rules"] = 3
    metrics["rules"]["why"] = "3 rules from 4,000 baskets: lower --min-count"
    section = _report(tmp_path, metrics)
    section = section[section.index("<h2>Bundles") :]
    assert "<th>why so few</th><td>3 rules from 4,000 baskets: lower --min-count</td>" in section
    assert "why so few" not in _report(tmp_path / "many", training_metrics())
