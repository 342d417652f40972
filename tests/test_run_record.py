"""What a training run records about its protocol reads as a person wrote it: the split as the
``--split`` text it came from, not a Python repr (``LastDaysSplitSpec(days=30)``), and the
validation split's counts as a JSON object, not a stringified dict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.splits import parse_split_spec
from training.run_record import describe_spec


@pytest.mark.parametrize(
    "text",
    [
        "temporal:2011-09-01",
        "temporal:2011-09-01T12:30:00",
        "last-days:30",
        "leave-last:2",
        "last-share:0.2",
        "last-baskets:2",
        "ratio:0.123456789:item:7",
    ],
)
def test_a_split_is_described_by_the_spec_text_it_parses_from(text: str) -> None:
    spec = parse_split_spec(text)
    assert describe_spec(spec) == text
    assert parse_split_spec(describe_spec(spec)) == spec


def test_a_ratio_spec_spells_out_its_defaults() -> None:
    assert describe_spec(parse_split_spec("ratio:0.2")) == "ratio:0.2:member:0"
    assert describe_spec(None) == "explicit test file"


def test_metrics_json_and_report_show_no_python_reprs(tiny_trained: tuple[Path, Path]) -> None:
    artifact = tiny_trained[1]
    metrics = json.loads((artifact / "metrics.json").read_text())
    protocol = metrics["protocol"]
    assert protocol["split"] == "last-days:60"
    assert protocol["validation"]["carved_from"] == "train"
    assert protocol["validation"]["train_rows"] > protocol["validation"]["test_rows"] > 0
    for text in ((artifact / "metrics.json").read_text(), (artifact / "report.html").read_text()):
        assert "SplitSpec(" not in text and "{'" not in text and "{&#x27;" not in text
    report = (artifact / "report.html").read_text()
    assert "last-days:60" in report and "carved_from = train; train_rows = " in report
