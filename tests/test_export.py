"""Campaign exports: the file holds what the API would answer, member by member, whatever the
batch size; the CLI selects members by file or segment and refuses bad options clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.cli import run_recsys
from training.bundle import RULES_FILE, Bundle, load_bundle
from training.export import BUNDLE_COLUMNS, RECOMMENDATION_COLUMNS, export_members
from training.member_bundles import BundleComposer
from training.models import MODEL_CLASSES
from training.recommend import BundleRecommender


@pytest.fixture(scope="module")
def bundle(tiny_trained: tuple[Path, Path]) -> Bundle:
    return load_bundle(tiny_trained[1], model_classes=MODEL_CLASSES)


def test_recommendations_file_equals_the_recommender_member_by_member(
    bundle: Bundle, tmp_path: Path
) -> None:
    out = tmp_path / "campaign.parquet"
    done: list[int] = []
    summary = export_members(bundle, out, n=5, batch=64, progress=done.append)
    exported = pl.read_parquet(out)
    assert tuple(exported.columns) == RECOMMENDATION_COLUMNS
    members = bundle.member_ids.external_ids.tolist()
    assert sum(done) == summary.members == len(members) and summary.unknown_members == 0
    assert summary.rows == exported.height == 5 * len(members)
    answers = BundleRecommender(bundle).recommend(members, 5)
    by_member = exported.partition_by("member_id", as_dict=True, maintain_order=True)
    for answer in answers:
        rows = by_member[(answer.member_id,)].sort("rank")
        assert rows.get_column("item_id").to_list() == answer.item_ids
        assert np.allclose(rows.get_column("score").to_numpy(), answer.scores)
        assert rows.get_column("rank").to_list() == [1, 2, 3, 4, 5]
        assert set(rows.get_column("model")) == {answer.model}
        assert set(rows.get_column("fallback")) == {answer.fallback}
    assert not list(tmp_path.glob(".*partial"))


def test_bundles_file_equals_the_composer_whatever_the_batch(
    bundle: Bundle, tmp_path: Path
) -> None:
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    export_members(bundle, small, kind="bundles", n=3, batch=7)
    export_members(bundle, large, kind="bundles", n=3)
    assert small.read_bytes() == large.read_bytes()
    exported = pl.read_csv(large)
    assert tuple(exported.columns) == BUNDLE_COLUMNS
    rules = pl.read_parquet(bundle.extra_files[RULES_FILE])
    members = bundle.member_ids.external_ids.tolist()
    found = BundleComposer(BundleRecommender(bundle), rules).for_members(members, 3)
    names = bundle.item_ids.external_ids
    expected = [
        (member, rank + 1, names[found.anchors[row, rank]], names[found.complements[row, rank]],
         names[found.thirds[row, rank]] if found.thirds[row, rank] >= 0 else None)
        for row, member in enumerate(members)
        for rank in range(int(found.counts()[row]))
    ]  # fmt: skip
    got = exported.select(
        "member_id", "rank", "anchor_item_id", "complement_item_id", "third_item_id"
    ).rows()
    assert got == expected
    assert exported.get_column("third_item_id").is_not_null().any()
    assert set(exported.get_column("source")) <= {"rules", "similar"}
    stand_ins = exported.filter(pl.col("source") == "similar")
    assert stand_ins.get_column("support").is_null().all()
    assert (stand_ins.get_column("lift") == 1.0).all()


def test_cli_exports_a_segment_or_a_member_file(bundle: Bundle, tmp_path: Path) -> None:
    segment = bundle.segment_names[0]
    out = tmp_path / "segment.parquet"
    result = run_recsys("export", "--bundle", bundle.path, "--out", out, "--segment", segment)
    assert result.returncode == 0, result.stderr
    assert bundle.member_segments is not None
    in_segment = set(bundle.member_ids.external_ids[bundle.member_segments == 0].tolist())
    assert set(pl.read_parquet(out).get_column("member_id")) == in_segment

    listed = tmp_path / "members.txt"
    known = bundle.member_ids.external_ids[0]
    listed.write_text(f"{known}\n\nnever-seen\n{known}\n")
    out = tmp_path / "listed.csv"
    result = run_recsys(
        "export", "--bundle", bundle.path, "--out", out, "--members", listed,
        "--kind", "bundles", "-n", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 members (1 unknown to the bundle" in " ".join(result.stdout.split())
    exported = pl.read_csv(out)
    assert exported.get_column("member_id").unique(maintain_order=True).to_list() == [
        known, "never-seen"
    ]  # fmt: skip
    assert exported.filter(pl.col("member_id") == "never-seen").get_column("fallback").all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "x.json"], "use a .csv or .parquet"),
        (["--out", "x.csv", "--kind", "emails"], "'emails' is not"),
        (["--out", "x.csv", "--segment", "vip-ish"], "unknown segment 'vip-ish'"),
        (["--out", "x.csv", "--model", "ghost"], "ghost"),
        (["--out", "x.csv", "--members", "missing.txt"], "no such file"),
    ],
)
def test_cli_refuses_bad_options_with_a_message_and_writes_nothing(
    bundle: Bundle, tmp_path: Path, options: list[str], message: str
) -> None:
    result = run_recsys("export", "--bundle", bundle.path, *options, cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join((result.stderr + result.stdout).split())
    assert "Traceback" not in result.stderr
    assert not [path for path in tmp_path.iterdir() if path.suffix in (".csv", ".json")]
