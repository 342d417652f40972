from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import polars as pl

from tests.cli import RECSYS, run_recsys
from tests.serving_helpers import free_port


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
    assert "Member report:" in text  # the path itself wraps at the console's width
    assert (artifact / "members_report.html").exists()


def test_demo_serves_and_prints_an_api_key_that_posts_events(tmp_path: Path) -> None:
    """`make demo`'s server takes events with the key it prints, and refuses them without."""
    port = free_port()
    environment = {name: value for name, value in os.environ.items() if name != "RECSYS_API_KEYS"}
    with (tmp_path / "demo.log").open("wb") as log:
        process = subprocess.Popen(
            [str(RECSYS), "demo", "--out", str(tmp_path / "data" / "demo"), "--members", "300",
             "--items", "80", "--events", "8000", "--trials", "1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=environment,
            start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_ready(client, process, tmp_path / "demo.log")
            printed = (tmp_path / "demo.log").read_text()
            found = re.search(r"Demo API key \(admin: events and reloads\): (\S+)", printed)
            assert found, printed[-2000:]
            event = {"event": "click", "member_id": "M0001", "item_id": "I001"}
            assert client.post("/v1/events", json=event).status_code == 401
            posted = client.post("/v1/events", json=event, headers={"X-API-Key": found[1]})
            assert posted.status_code == 200, posted.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(log.read_text()[-3000:])
