from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.cli import run_recsys


def test_validate_bad_csv_prints_a_clear_message_and_writes_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "member_id,item_id,event,timestamp\n"
        "m1,i1,view,2024-01-01\n"
        "m1,i2,teleport,2024-01-01\n"
        "m2,i1,click,not-a-date\n"
    )
    quarantine = tmp_path / "rejected.csv"
    result = run_recsys("validate", "-i", path, "--quarantine", quarantine)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "orders.csv" in result.stderr and "2 of 3 rows" in result.stderr
    assert "--max-bad-share" in result.stderr
    assert pl.read_csv(quarantine)["_reason"].to_list() == [
        "unknown event (expected one of view, click, cart, purchase)",
        "unparseable timestamp",
    ]


def test_validate_missing_column_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "noitem.csv"
    path.write_text("member_id,timestamp\nm1,2024-01-01\n")
    result = run_recsys("validate", "-i", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "required column 'item_id' is missing" in result.stderr


def test_validate_json_reports_counts_that_add_up(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(
        "member_id,item_id,timestamp\nm1,i1,2024-01-01\nm1,i1,2024-01-01\n,i2,2024-01-01\n"
    )
    result = run_recsys("validate", "-i", path, "--json", "--max-bad-share", "0.5")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (
        report["rows_read"],
        report["accepted"],
        report["duplicates"],
        report["quarantined"],
    ) == (3, 1, 1, 1)
    assert report["reasons"] == {"missing member_id": 1}


def test_unknown_preset_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("member_id,item_id,timestamp\n")
    result = run_recsys("validate", "-i", path, "--preset", "nope")
    assert result.returncode == 2
    assert "known presets: online-retail" in result.stderr


@pytest.mark.parametrize(
    ("option", "header", "field"),
    [
        ("--members", "member_id,birth_date", "birth_date"),
        ("--items", "item_id,released_at", "released_at"),
    ],
)
def test_a_bad_optional_date_in_a_side_table_names_its_row_and_column(
    tmp_path: Path, option: str, header: str, field: str
) -> None:
    events = tmp_path / "events.csv"
    events.write_text("member_id,item_id,timestamp\nm1,i1,2024-01-01\n")
    table = tmp_path / "side.csv"
    table.write_text(f"{header}\nm1,1990-07-15\nm2,soon\n")
    result = run_recsys(
        "members", "score", "-i", events, option, table, "--out", tmp_path / "s.csv"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert f"column '{field}', unparseable {field}" in message
    assert "row 2:" in message and f"{field}='soon'" in message
    rejected = pl.read_csv(tmp_path / "data" / "quarantine" / "side.quarantine.csv")
    assert rejected["_reason"].to_list() == [f"unparseable {field}"]
