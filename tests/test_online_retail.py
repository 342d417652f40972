"""The Online Retail preset on the real UCI file (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import run_recsys

pytestmark = pytest.mark.slow


def test_preset_loads_with_no_flags_and_counts_add_up(
    online_retail_path: Path, tmp_path: Path
) -> None:
    result = run_recsys(
        "validate",
        "-i",
        online_retail_path,
        "--preset",
        "online-retail",
        "--json",
        "--quarantine",
        tmp_path / "q.csv",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows_read"] == 541_909
    assert report["rows_read"] == report["accepted"] + report["duplicates"] + report["quarantined"]
    # 135,080 rows lack a customer; 9,288 are cancellations (some lack a customer too).
    assert report["reasons"]["missing member_id"] == 132_220
    assert report["reasons"]["cancelled order (invoice number starts with C)"] == 9_288
    assert report["expected_exclusions"] == report["quarantined"]
    assert report["bad_share"] == 0.0


def test_preset_summary_is_printed_for_people(online_retail_path: Path, tmp_path: Path) -> None:
    result = run_recsys(
        "validate",
        "-i",
        online_retail_path,
        "--preset",
        "online-retail",
        "--quarantine",
        tmp_path / "q.csv",
    )
    assert result.returncode == 0, result.stderr
    assert "541,909" in result.stdout
