"""Campaign exports: the file holds what the API would answer, member by member, whatever the
batch size, for every member once (those without events too) and with what they did since the
artifact's data; the CLI selects members by file or segment and refuses bad options clearly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.members import SEGMENT, compute_member_profiles
from serving.event_store import EventStore
from tests.cli import RECSYS, run_recsys
from tests.serving_helpers import READ, WRITE, Server, copy_artifact
from training import export
from training.artifact import RULES_FILE, ModelArtifact, load_artifact
from training.export import (
    BUNDLE_COLUMNS,
    RECOMMENDATION_COLUMNS,
    SCORE_KINDS,
    export_members,
)
from training.member_bundles import BundleComposer
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender, MemberContext
from training.roster import Roster


@pytest.fixture(scope="module")
def artifact(tiny_trained: tuple[Path, Path]) -> ModelArtifact:
    return load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)


def test_recommendations_file_equals_the_recommender_member_by_member(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    out = tmp_path / "campaign.parquet"
    done: list[int] = []
    summary = export_members(artifact, out, n=5, batch=64, progress=done.append)
    exported = pl.read_parquet(out)
    assert tuple(exported.columns) == RECOMMENDATION_COLUMNS
    members = artifact.member_ids.external_ids.tolist()
    without_events = Roster(artifact).member_ids.tolist()
    assert sum(done) == summary.members == len(members) + len(without_events)
    assert summary.unknown_members == len(without_events) and summary.live_members == 0
    assert summary.rows == exported.height == 5 * summary.members
    answers = ArtifactRecommender(artifact).recommend(members, 5)
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
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    export_members(artifact, small, kind="bundles", n=3, batch=7)
    export_members(artifact, large, kind="bundles", n=3)
    assert small.read_bytes() == large.read_bytes()
    exported = pl.read_csv(large)
    assert tuple(exported.columns) == BUNDLE_COLUMNS
    rules = pl.read_parquet(artifact.extra_files[RULES_FILE])
    roster = Roster(artifact)
    without_events = roster.member_ids.tolist()
    members = [*artifact.member_ids.external_ids.tolist(), *without_events]
    contexts = [None] * len(artifact.member_ids) + [
        MemberContext(segment=int(code)) for code in roster.segment_codes(without_events)
    ]
    composer = BundleComposer(ArtifactRecommender(artifact), rules)
    found = composer.for_members(members, 3, contexts=contexts)
    names = artifact.item_ids.external_ids
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


def test_cli_exports_a_segment_or_a_member_file(artifact: ModelArtifact, tmp_path: Path) -> None:
    segment = artifact.segment_names[0]
    out = tmp_path / "segment.parquet"
    result = run_recsys("export", "--artifact", artifact.path, "--out", out, "--segment", segment)
    assert result.returncode == 0, result.stderr
    assert artifact.member_segments is not None
    in_segment = set(artifact.member_ids.external_ids[artifact.member_segments == 0].tolist())
    assert set(pl.read_parquet(out).get_column("member_id")) == in_segment

    listed = tmp_path / "members.txt"
    known = artifact.member_ids.external_ids[0]
    [without_events, *_] = Roster(artifact).member_ids.tolist()
    listed.write_text(f"{known}\n\nnever-seen\n{known}\n{without_events}\nnever-seen\n")
    out = tmp_path / "listed.csv"
    result = run_recsys(
        "export", "--artifact", artifact.path, "--out", out, "--members", listed,
        "--kind", "bundles", "-n", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 members (2 without history in the model artifact" in " ".join(result.stdout.split())
    exported = pl.read_csv(out)
    assert exported.get_column("member_id").unique(maintain_order=True).to_list() == [
        known, "never-seen", without_events
    ]  # fmt: skip
    assert (
        exported.group_by("member_id").agg(pl.col("rank").n_unique() == pl.len()).to_series(1).all()
    )
    strangers = exported.filter(pl.col("member_id") != known)
    assert strangers.get_column("fallback").all()


def test_a_segment_export_includes_its_members_without_events(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    roster = Roster(artifact)
    code = int(roster.segment_codes(roster.member_ids.tolist())[0])
    out = tmp_path / "segment.csv"
    segment = artifact.segment_names[code]
    result = run_recsys("export", "--artifact", artifact.path, "--out", out, "--segment", segment)
    assert result.returncode == 0, result.stderr
    assert artifact.member_segments is not None
    expected = {
        *artifact.member_ids.external_ids[artifact.member_segments == code].tolist(),
        *roster.in_segment(code).tolist(),
    }
    assert set(pl.read_csv(out).get_column("member_id")) == expected


def test_every_member_once_with_n_distinct_items_none_bought(
    tiny_trained: tuple[Path, Path], artifact: ModelArtifact, tmp_path: Path
) -> None:
    """The whole members file and everyone with events, each once with exactly n distinct
    items, none of which the member bought anywhere in the interactions file: purchases up to
    the artifact's data_end through the artifact, later ones through the event store, where
    serving would have them (an artifact trained on a split has the test window's there)."""
    store = tiny_trained[0]
    interactions = pl.read_parquet(store / "interactions.parquet")
    members = pl.read_parquet(store / "members.parquet")
    events_url = _event_store_after(interactions, _data_end(artifact), tmp_path / "events.db")
    out = tmp_path / "campaign.parquet"
    result = run_recsys(
        "export", "--artifact", artifact.path, "--out", out, "-n", "20", "--events-url", events_url
    )
    assert result.returncode == 0, result.stderr
    exported = pl.read_parquet(out)
    per_member = exported.group_by("member_id").agg(
        pl.len().alias("rows"),
        pl.col("item_id").n_unique().alias("items"),
        (pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all().alias("ranked"),
    )
    everyone = set(members.get_column("member_id")) | set(interactions.get_column("member_id"))
    assert set(per_member.get_column("member_id")) == everyone
    assert per_member.height == len(everyone) > len(artifact.member_ids)
    assert (per_member.get_column("rows") == 20).all()
    assert (per_member.get_column("items") == 20).all()
    assert per_member.get_column("ranked").all()
    bought = interactions.filter(pl.col("event") == "purchase").select("member_id", "item_id")
    assert exported.join(bought.unique(), on=["member_id", "item_id"], how="semi").is_empty()


def test_members_without_events_get_their_segments_popularity_flagged(
    tiny_trained: tuple[Path, Path], artifact: ModelArtifact, tmp_path: Path
) -> None:
    store = tiny_trained[0]
    interactions = pl.read_parquet(store / "interactions.parquet")
    members = pl.read_parquet(store / "members.parquet")
    data_end = _data_end(artifact).replace(tzinfo=None)
    profiles = compute_member_profiles(interactions, reference_time=data_end, members=members)
    segment_of = dict(profiles.select("member_id", SEGMENT).iter_rows())
    seen = interactions.filter(pl.col("timestamp") <= data_end).get_column("member_id")
    without = members.filter(~pl.col("member_id").is_in(seen.implode())).get_column("member_id")
    assert without.len() > 0
    out = tmp_path / "campaign.parquet"
    export_members(artifact, out, n=10)
    exported = pl.read_parquet(out)
    recommender = ArtifactRecommender(artifact)
    [global_answer] = recommender.recommend(["nobody-at-all"], 10)
    for member in without.to_list():
        rows = exported.filter(pl.col("member_id") == member).sort("rank")
        code = artifact.segment_names.index(segment_of[member])
        [expected] = recommender.recommend([member], 10, contexts=[MemberContext(segment=code)])
        assert expected.item_ids != global_answer.item_ids  # the segment's own popularity
        assert rows.get_column("item_id").to_list() == expected.item_ids
        assert rows.get_column("fallback").all()
        assert set(rows.get_column("model")) == {"popular"}


def test_recsys_train_carries_the_members_file_members_without_events(
    tiny_trained: tuple[Path, Path], tmp_path: Path
) -> None:
    store = tiny_trained[0]
    out = tmp_path / "artifact"
    result = run_recsys(
        "train", "-i", store / "interactions.parquet", "--items", store / "items.parquet",
        "--members", store / "members.parquet", "--models", "popular", "--trials", 1,
        "--out", out, "--no-mlflow", "--list-depth", 0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Its standard error is a pipe, as a log is: each step is a plain line with its time.
    assert re.search(r"^training: tuning popular on validation \(\d+\.\d s\)$", result.stderr, re.M)
    assert re.search(r"^training: done in \d+\.\d s$", result.stderr, re.M), result.stderr
    trained = load_artifact(out, model_classes=MODEL_CLASSES)
    members = pl.read_parquet(store / "members.parquet").get_column("member_id")
    without = set(members) - set(trained.member_ids.external_ids.tolist())
    carried = pl.read_parquet(trained.extra_files["members.parquet"])
    assert carried.columns == ["member_id", "segment"] and carried.height == len(without) > 0
    assert set(carried.get_column("member_id")) == without
    assert set(carried.get_column("segment")) <= set(trained.segment_names)


def test_events_of_every_store_query_are_taken_in(
    artifact: ModelArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each member's top item, bought since the artifact, leaves their list, whichever of a
    batch's queries (a bounded id list each) read the member's events."""
    monkeypatch.setattr(export, "EVENTS_QUERY_MEMBERS", 3)
    members = artifact.member_ids.external_ids[:10].tolist()
    tops = [answer.item_ids[0] for answer in ArtifactRecommender(artifact).recommend(members, 5)]
    store = EventStore.open(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        store.add_events([_stored_purchase(m, item) for m, item in zip(members, tops, strict=True)])
        out = tmp_path / "campaign.parquet"
        summary = export_members(artifact, out, n=5, member_ids=members, batch=4, events=store)
    finally:
        store.close()
    assert summary.live_members == len(members)
    exported = pl.read_parquet(out)
    for member, top in zip(members, tops, strict=True):
        listed = exported.filter(pl.col("member_id") == member).get_column("item_id").to_list()
        assert len(listed) == 5 and top not in listed


def test_purchases_posted_to_the_api_leave_the_export_and_its_bundles(
    tiny_trained: tuple[Path, Path], artifact: ModelArtifact, tmp_path: Path
) -> None:
    """What a storefront posts counts in the next export as in the next API answer: the
    member's top item and an item of their first bundle, bought through /v1/events, are in
    neither the member's recommendations nor any of their bundles."""
    events_url = f"sqlite:///{tmp_path / 'events.db'}"
    served = copy_artifact(tiny_trained[1], tmp_path / "artifact")
    member = artifact.member_ids.external_ids[0]
    listed = tmp_path / "member.txt"
    listed.write_text(f"{member}\n")
    server = Server(
        {"RECSYS_ARTIFACT": str(served), "RECSYS_EVENTS_URL": events_url}, tmp_path / "server.log"
    )
    try:
        server.wait()
        before = _member_export(artifact, listed, events_url, tmp_path / "before")
        top = before.recommendations.get_column("item_id")[0]
        first_bundle = before.bundles.row(0, named=True)
        other = next(
            item for item in (first_bundle["anchor_item_id"], first_bundle["complement_item_id"])
            if item != top
        )  # fmt: skip
        bought = {top, other}
        response = server.client.post(
            "/v1/events",
            json=[{"event_id": uuid.uuid4().hex, "event": "purchase", "member_id": member,
                   "item_id": item} for item in sorted(bought)],
            headers=WRITE,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        answer = server.client.get(f"/v1/members/{member}/recommendations", headers=READ).json()
        assert not bought & {item["item_id"] for item in answer["items"]}
        bundles = server.client.get(f"/v1/members/{member}/bundles", headers=READ).json()
        assert not bought & {i["item_id"] for b in bundles["bundles"] for i in b["items"]}
    finally:
        server.stop()
    after = _member_export(artifact, listed, events_url, tmp_path / "after")
    assert after.recommendations.height == before.recommendations.height == 10
    assert not bought & set(after.recommendations.get_column("item_id"))
    bundle_items = after.bundles.select(
        "anchor_item_id", "complement_item_id", "third_item_id"
    ).unpivot()
    assert after.bundles.height > 0
    assert not bought & set(bundle_items.get_column("value").drop_nulls())


class _MemberExport:
    """One member's exported recommendations and bundles."""

    def __init__(self, recommendations: pl.DataFrame, bundles: pl.DataFrame) -> None:
        self.recommendations = recommendations.sort("rank")
        self.bundles = bundles.sort("rank")


def _member_export(
    artifact: ModelArtifact, members: Path, events_url: str, out: Path
) -> _MemberExport:
    """``recsys export`` of both kinds for the members of ``members``, with ``events_url``."""
    frames = []
    for kind in ("recommendations", "bundles"):
        path = out / f"{kind}.csv"
        result = run_recsys(
            "export", "--artifact", artifact.path, "--out", path, "--members", members,
            "--kind", kind, "--events-url", events_url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        frames.append(pl.read_csv(path))
    return _MemberExport(*frames)


def _data_end(artifact: ModelArtifact) -> datetime:
    return datetime.fromisoformat(str(artifact.manifest["data_end"]))


def _event_store_after(interactions: pl.DataFrame, data_end: datetime, path: Path) -> str:
    """A SQLite event store holding the interactions after ``data_end`` (as serving would have
    received them); returns its URL."""
    later = interactions.filter(pl.col("timestamp") > data_end.replace(tzinfo=None))
    url = f"sqlite:///{path}"
    store = EventStore.open(url)
    try:
        store.add_events([
            {**_stored_purchase(row["member_id"], row["item_id"]), "event": row["event"],
             "occurred_at": row["timestamp"].replace(tzinfo=data_end.tzinfo).timestamp()}
            for row in later.iter_rows(named=True)
        ])  # fmt: skip
    finally:
        store.close()
    return url


def _stored_purchase(member_id: str, item_id: str) -> dict[str, object]:
    """An event store row: a purchase received now."""
    now = time.time()
    return {"event_id": uuid.uuid4().hex, "event": "purchase", "member_id": member_id,
            "item_id": item_id, "recommendation_id": None, "occurred_at": now,
            "received_at": now}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "x.json"], "use a .csv or .parquet"),
        (["--out", "x.csv", "--kind", "emails"], "'emails' is not"),
        (["--out", "x.csv", "--segment", "vip-ish"], "unknown segment 'vip-ish'"),
        (["--out", "x.csv", "--model", "ghost"], "ghost"),
        (["--out", "x.csv", "--members", "missing.txt"], "no such file"),
        (["--out", "x.csv", "--events-url", "nonsense"], "not a database URL"),
        (["--out", "x.csv", "--events-url", "sqlite:///gone.db"], "no such file gone.db"),
        (
            ["--out", "x.csv", "--events-url", "postgresql+psycopg://recsys@127.0.0.1:1/db"],
            "cannot open the event store",
        ),
    ],
)
def test_cli_refuses_bad_options_with_a_message_and_writes_nothing(
    artifact: ModelArtifact, tmp_path: Path, options: list[str], message: str
) -> None:
    result = run_recsys("export", "--artifact", artifact.path, *options, cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join((result.stderr + result.stdout).split())
    assert "Traceback" not in result.stderr
    assert not [path for path in tmp_path.iterdir() if path.suffix in (".csv", ".json")]


def test_score_kind_says_which_scores_are_a_models_and_which_popularity_counts(
    artifact: ModelArtifact, tmp_path: Path
) -> None:
    out = tmp_path / "campaign.parquet"
    export_members(artifact, out, n=10)
    exported = pl.read_parquet(out)
    assert set(exported.get_column("score_kind")) == set(SCORE_KINDS)
    popular = exported.filter(pl.col("model") == "popular")
    assert popular.height and set(popular.get_column("score_kind")) == {"popularity"}
    personal = exported.filter((pl.col("model") != "popular") & ~pl.col("fallback"))
    assert personal.height and set(personal.get_column("score_kind")) == {"model"}
    # Within a list popularity completed, the model's items come first, popularity's after.
    completed = exported.filter((pl.col("model") != "popular") & pl.col("fallback"))
    for rows in completed.partition_by("member_id"):
        kinds = rows.sort("rank").get_column("score_kind").to_list()
        assert kinds == sorted(kinds), kinds  # "model" < "popularity"


def test_the_segment_table_the_report_and_a_segment_export_count_the_same_members(
    tiny_trained: tuple[Path, Path], artifact: ModelArtifact, tmp_path: Path
) -> None:
    """All three take segments as of the data's last event (they once seemed to disagree)."""
    store = tiny_trained[0]
    table = subprocess.run(
        [str(RECSYS), "segments", "-i", store / "interactions.parquet",
         "--members", store / "members.parquet"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "as of the data's last event" in table.stdout
    assert "value tier (computed: spend rank)" in table.stdout
    printed = {
        found[1]: int(found[2].replace(",", ""))
        for found in re.finditer(r"lifecycle segment\s*│\s*(\S+)\s*│\s*([\d,]+)", table.stdout)
    }
    metrics = json.loads((artifact.path / "metrics.json").read_text())
    assert printed == metrics["segment_sizes"]
    segment = "at-risk" if printed.get("at-risk") else max(printed, key=printed.__getitem__)
    out = tmp_path / "segment.parquet"
    result = run_recsys("export", "--artifact", artifact.path, "--out", out, "--segment", segment)
    assert result.returncode == 0, result.stderr
    assert pl.read_parquet(out).get_column("member_id").n_unique() == printed[segment] > 0
