"""The serving building blocks without a server: live context in ArtifactRecommender,
the per-category cap, A/B assignment, Wilson intervals, keys, settings, model artifact
versions, and answers that survive a failing event store."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from serving.artifact_sources import DirectorySource, manifest_version
from serving.auth import KeyRing
from serving.erasure import ErasedMembers
from serving.errors import ForbiddenError, UnauthorizedError
from serving.event_store import EventStore
from serving.impressions import ImpressionBuffer
from serving.model_store import ModelStore
from serving.query import query_dependency, query_openapi
from serving.recommending import RecommendationService
from serving.reports import wilson_interval
from serving.schemas import (
    EventIn,
    MemberRecommendationQuery,
    RecommendationOptions,
    RecommendationResponse,
)
from serving.settings import DEFAULT_MODEL_URI, Role, Settings, VariantConfig
from serving.variants import VariantAssigner, member_point
from training.artifact import ModelArtifact, load_artifact
from training.models import MODEL_CLASSES
from training.recommend import DECLARED_MODEL, FALLBACK_MODEL, ArtifactRecommender, MemberContext


@pytest.fixture(scope="module")
def artifact(tiny_trained: tuple[Path, Path]) -> ModelArtifact:
    return load_artifact(tiny_trained[1], model_classes=MODEL_CLASSES)


def _category_items(
    artifact: ModelArtifact, recommender: ArtifactRecommender, count: int
) -> list[int]:
    """``count`` available items of the catalog's most populated category."""
    categories = artifact.catalog["category"].to_list()
    biggest = max(recommender.categories, key=categories.count)
    allowed = recommender.allowed_items(biggest)
    return np.flatnonzero(allowed)[:count].tolist()


@pytest.mark.parametrize("model", ["als", "item_knn", "content"])
def test_a_stranger_with_three_clicks_gets_a_personal_answer(
    artifact: ModelArtifact, model: str
) -> None:
    recommender = ArtifactRecommender(artifact)
    clicked = _category_items(artifact, recommender, 3)
    context = MemberContext(items=clicked, weights=[2.0] * 3)
    [personal] = recommender.recommend(["stranger"], 5, model=model, contexts=[context])
    [popular] = recommender.recommend(["stranger"], 5, model=model)
    assert not personal.fallback and personal.model == model
    assert popular.fallback and popular.model == FALLBACK_MODEL
    assert personal.item_ids != popular.item_ids
    category = artifact.catalog["category"][clicked[0]]
    shown = artifact.item_ids.to_internal(personal.item_ids)
    in_category = sum(artifact.catalog["category"][int(item)] == category for item in shown)
    assert in_category >= 2  # the clicks pull the list towards their category


def test_new_purchases_are_excluded_and_change_a_known_members_list(
    artifact: ModelArtifact,
) -> None:
    recommender = ArtifactRecommender(artifact)
    member = artifact.member_ids.external_ids[0]
    [before] = recommender.recommend([member], 10, model="als")
    bought = artifact.item_ids.index_of(before.item_ids[0])
    context = MemberContext(items=[bought], weights=[8.0], purchased=[bought])
    [after] = recommender.recommend([member], 10, model="als", contexts=[context])
    assert before.item_ids[0] not in after.item_ids
    assert len(after.item_ids) == len(set(after.item_ids)) == 10
    [kept] = recommender.recommend(
        [member], 10, model="als", contexts=[context], exclude_purchased=False
    )
    assert kept.item_ids != after.item_ids


def test_declared_preferences_are_answered_by_content_and_flagged(artifact: ModelArtifact) -> None:
    recommender = ArtifactRecommender(artifact)
    liked = _category_items(artifact, recommender, 2)
    context = MemberContext(items=liked, weights=[1.0, 1.0], declared=True)
    [answer] = recommender.recommend(["newcomer"], 5, contexts=[context])
    assert answer.model == DECLARED_MODEL and answer.fallback
    assert len(answer.item_ids) == 5


def test_a_declared_segment_gives_that_segments_popularity(artifact: ModelArtifact) -> None:
    recommender = ArtifactRecommender(artifact)
    assert artifact.segment_popularity is not None
    code = int(np.argmax(artifact.segment_popularity.sum(axis=1)))
    [answer] = recommender.recommend(["newcomer"], 5, contexts=[MemberContext(segment=code)])
    expected = np.argsort(-(artifact.segment_popularity[code] + 1e-4 * artifact.popularity))
    available = recommender.allowed_items()
    expected_ids = artifact.item_ids.to_external(expected[available[expected]][:5]).tolist()
    assert answer.fallback and answer.item_ids == expected_ids


@pytest.mark.parametrize("cap", [1, 2])
def test_the_category_cap_diversifies_without_losing_items(
    artifact: ModelArtifact, cap: int
) -> None:
    recommender = ArtifactRecommender(artifact)
    member = artifact.member_ids.external_ids[3]
    [answer] = recommender.recommend([member], 12, max_per_category=cap)
    assert len(answer.item_ids) == len(set(answer.item_ids)) == 12
    categories = [
        artifact.catalog["category"][artifact.item_ids.index_of(i)] for i in answer.item_ids
    ]
    assert max(categories.count(c) for c in set(categories)) <= cap


def test_the_cap_gives_way_when_a_category_filter_leaves_one_category(
    artifact: ModelArtifact,
) -> None:
    recommender = ArtifactRecommender(artifact)
    category = recommender.categories[0]
    size = int(recommender.allowed_items(category).sum())
    [answer] = recommender.recommend(
        ["stranger"], size, category=category, max_per_category=1, exclude_purchased=False
    )
    assert len(answer.item_ids) == size  # exactly n first; the cap is best effort


def test_similar_items_are_available_distinct_and_exact(artifact: ModelArtifact) -> None:
    recommender = ArtifactRecommender(artifact)
    assert recommender.similarity_model() is not None
    for model in ("item_knn", "als", "content"):
        answer = recommender.similar_items(0, 20, model=model)
        assert len(answer.item_ids) == len(set(answer.item_ids)) == 20
        assert artifact.item_ids.external_ids[0] not in answer.item_ids
        assert recommender.allowed_items()[artifact.item_ids.to_internal(answer.item_ids)].all()
    assert not recommender.supports_similarity("popular")


def test_variant_assignment_is_stable_and_proportional() -> None:
    assigner = VariantAssigner({"champion": 0.9, "challenger": 0.1}, salt="exp-1")
    members = [f"M{i:06d}" for i in range(20_000)]
    first = [assigner.assign(m) for m in members]
    assert first == [assigner.assign(m) for m in members]
    share = first.count("challenger") / len(members)
    assert abs(share - 0.1) < 0.01
    assert assigner.primary == "champion"
    reshuffled = VariantAssigner({"champion": 0.9, "challenger": 0.1}, salt="exp-2")
    assert [reshuffled.assign(m) for m in members] != first
    assert 0 <= member_point("M1") < 1 and member_point("M1") == member_point("M1")


def test_wilson_interval() -> None:
    rate = wilson_interval(10, 100)
    assert rate.value == pytest.approx(0.1)
    assert rate.low == pytest.approx(0.0552, abs=1e-4)
    assert rate.high == pytest.approx(0.1744, abs=1e-4)
    zero = wilson_interval(0, 50)
    assert zero.low == 0.0 and 0 < zero.high < 0.1
    assert wilson_interval(0, 0).value is None
    assert math.isclose(wilson_interval(5, 5).high or 0, 1.0)


def test_keys_grant_their_roles_and_admin_grants_all() -> None:
    keys = KeyRing({"r": [Role.READ], "w": [Role.EVENTS], "a": [Role.ADMIN]})
    assert keys.roles_of("r") == {Role.READ}
    assert keys.roles_of("a") == set(Role)
    assert keys.roles_of("nope") == set()
    keys.check("w", Role.EVENTS)
    with pytest.raises(UnauthorizedError, match="RECSYS_API_KEYS"):
        keys.check(None, Role.EVENTS)
    with pytest.raises(UnauthorizedError, match=r"not valid.*RECSYS_API_KEYS"):
        keys.check("nope", Role.EVENTS)
    with pytest.raises(ForbiddenError):
        keys.check("r", Role.ADMIN)


def test_settings_choose_one_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Settings().variant_configs() == {}
    assert Settings(artifact=Path("b")).variant_configs()["default"].source == "b"
    assert Settings(tracking_uri="sqlite:///x.db").variant_configs()["default"].source == (
        DEFAULT_MODEL_URI
    )
    with pytest.raises(ValidationError, match="only one of"):
        Settings(artifact=Path("b"), model_uri="models:/m/1")
    monkeypatch.setenv("RECSYS_VARIANTS", json.dumps({"a": {"source": "x", "weight": 3}}))
    assert Settings().variant_configs()["a"].weight == 3


def test_an_artifact_version_follows_its_manifest(tiny_trained: tuple[Path, Path]) -> None:
    artifact = tiny_trained[1]
    manifest = json.loads((artifact / "manifest.json").read_text())
    version = DirectorySource(artifact).current_version()
    assert version == manifest_version(manifest)
    assert manifest_version({**manifest, "created_at": "2030-01-01T00:00:00+00:00"}) != version


@pytest.mark.parametrize("bad", ["", "a\x00b", "line\nbreak", "\ud800", "x" * 129])
def test_ids_that_could_not_be_stored_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        EventIn(event="click", member_id=bad, item_id="i")


def test_recommendations_survive_an_event_store_failure(
    tiny_trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = EventStore.open(f"sqlite:///{tmp_path / 'events.db'}")
    source = DirectorySource(tiny_trained[1])
    models = ModelStore(
        {"default": VariantConfig(source=str(tiny_trained[1]))}, {"default": source}
    )
    impressions = ImpressionBuffer(events, flush_seconds=1, batch=10, max_pending=10)
    service = RecommendationService(models, events, impressions, ErasedMembers(events))

    def broken(*_: object) -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(events, "member_events", broken)

    async def answer() -> RecommendationResponse:
        await models.reload()
        payload = await service.for_member("someone", RecommendationOptions(n=4))
        return RecommendationResponse.model_validate(payload)

    response = asyncio.run(answer())
    assert len(response.items) == 4 and response.fallback
    events.close()


def _query_request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query,
                    "headers": []})  # fmt: skip


def test_query_dependency_validates_the_whole_query_string_at_once() -> None:
    parse = query_dependency(MemberRecommendationQuery)
    query = asyncio.run(parse(_query_request(b"n=5&liked=a&liked=b&category=x&unknown=1")))
    assert (query.n, query.liked, query.category) == (5, ["a", "b"], "x")
    with pytest.raises(RequestValidationError) as raised:
        asyncio.run(parse(_query_request(b"n=0")))
    [problem] = raised.value.errors()
    assert problem["loc"] == ("query", "n") and problem["input"] == "0"


def test_query_openapi_documents_every_field_of_the_model() -> None:
    parameters = query_openapi(MemberRecommendationQuery)["parameters"]
    by_name = {parameter["name"]: parameter for parameter in parameters}
    assert set(by_name) == set(MemberRecommendationQuery.model_fields)
    assert by_name["n"]["schema"]["maximum"] == 100 and not by_name["n"]["required"]
    assert by_name["liked"]["schema"]["type"] == "array"
    assert all(parameter["in"] == "query" and parameter["description"] for parameter in parameters)
