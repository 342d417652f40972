from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tests.cli import run_recsys


def test_generate_then_validate_and_segment_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = run_recsys(
        "generate", "--members", 300, "--items", 80, "--events", 6000, "--seed", 3, "--out", store
    )
    assert result.returncode == 0, result.stderr
    assert "6,000 events" in " ".join(result.stdout.split())
    for name in ("interactions.parquet", "items.parquet", "members.parquet", "planted_bundles.csv"):
        assert (store / name).exists()

    validated = run_recsys("validate", "-i", store / "interactions.parquet", "--json")
    report = json.loads(validated.stdout)
    assert report["rows_read"] == 6000
    assert report["quarantined"] == 0

    profiles_path = tmp_path / "profiles.parquet"
    segmented = run_recsys(
        "segments", "-i", store / "interactions.parquet", "--members", store / "members.parquet",
        "--out", profiles_path, "--json",
    )  # fmt: skip
    assert segmented.returncode == 0, segmented.stderr
    summary = json.loads(segmented.stdout)
    segment_rows = [row for row in summary if row["group"] == "segment"]
    assert sum(row["members"] for row in segment_rows) == 300
    assert pl.read_parquet(profiles_path).height == 300


def test_generate_rejects_a_bad_option_without_traceback(tmp_path: Path) -> None:
    result = run_recsys("generate", "--members", 0, "--out", tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--members" in result.stderr


def test_segments_rejects_unknown_output_suffix(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("member_id,item_id,timestamp\nm1,i1,2024-01-01\n")
    result = run_recsys("segments", "-i", path, "--out", tmp_path / "p.xlsx")
    assert result.returncode == 2
    assert "use a .csv or .parquet" in result.stderr


def test_demo_generates_trains_registers_and_prints_where_to_look(tmp_path: Path) -> None:
    result = run_recsys(
        "demo", "--out", tmp_path / "data" / "demo", "--members", 300, "--items", 80,
        "--events", 8000, "--trials", 1, "--no-serve", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / "data" / "demo" / "artifact"
    assert (artifact / "manifest.json").exists() and (artifact / "report.html").exists()
    text = " ".join(result.stdout.split())
    assert "version 1 is now champion" in text
    assert "recsys recommend --artifact" in text
