"""``recsys simulate --campaign``: a campaign exported into a real server's event store, its
members' planted reactions posted through the API, and the server's uplift report holding the
planted truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import run_recsys
from tests.serving_helpers import serve_tiny


def test_a_replayed_campaign_reports_the_planted_uplift(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    server = serve_tiny(tiny_trained[1], tmp_path)
    try:
        out = tmp_path / "replay.parquet"
        exported = run_recsys(
            "campaign", "export", "--campaign", "replay", "--artifact", tmp_path / "artifact",
            "--out", out, "--holdout", "0.5", "--events-url", f"sqlite:///{tmp_path / 'events.db'}",
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        manifest = json.loads(out.with_name("replay.manifest.json").read_text())
        replayed = run_recsys(
            "simulate", "--url", server.url, "--campaign", out.with_name("replay.manifest.json"),
            "--treated-rate", "0.6", "--base-rate", "0.1", "--other-rate", "0.2",
            "--api-key", "boss", "--json",
        )  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        replay = json.loads(replayed.stdout)
    finally:
        server.stop()
    counts = manifest["counts"]
    assert replay["campaign_id"] == manifest["campaign_id"] and replay["failures"] == 0
    assert (replay["treatment"], replay["holdout"]) == (counts["sent"], counts["holdout"])
    assert replay["skipped"] == 0 and replay["purchases"] > 0
    overall = replay["report"]["overall"]
    assert overall["treatment"]["members"] == counts["sent"]
    assert overall["holdout"]["members"] == counts["holdout"]
    sent_item = replay["planted"]["sent_item_conversion"]
    assert sent_item["planted"] == pytest.approx(0.5)
    assert sent_item["holds"] and sent_item["low"] > 0, sent_item
    assert replay["planted"]["conversion"]["holds"], replay["planted"]["conversion"]


def test_a_manifest_whose_files_changed_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "c.parquet"
    export.write_bytes(b"not the exported file")
    manifest = tmp_path / "c.manifest.json"
    manifest.write_text(
        json.dumps({"campaign_id": "c-1", "files": {"c.parquet": {"sha256": "0" * 64}}})
    )
    done = run_recsys("simulate", "--url", "http://127.0.0.1:9", "--campaign", manifest)
    assert done.returncode != 0
    assert "missing or changed since the export" in done.stderr + done.stdout
    neither = run_recsys("simulate", "--url", "http://127.0.0.1:9")
    assert neither.returncode != 0 and "--test-file" in neither.stderr + neither.stdout
