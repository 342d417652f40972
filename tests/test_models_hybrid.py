"""Hybrid and content models: the shared contract, plus what content features add (new items,
new members known only by segment, content similarity)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from features import columns as col
from tests import model_contract
from tests.model_contract import (
    RecommenderContract,
    item_group,
    member_group,
    two_group_interactions,
    two_group_items,
)
from training.dataset import TrainingData, build_training_data
from training.models.base import ModelFitError
from training.models.content import ContentRecommender
from training.models.lightfm_model import LightFMRecommender

#: The contract's data set, shared with this module's own tests (pytest finds it by name).
two_group_data = model_contract.two_group_data

NEW_ITEM = "new-red-thing"


def small_lightfm() -> LightFMRecommender:
    return LightFMRecommender(no_components=8, epochs=30)


class TestLightFMContract(RecommenderContract):
    def make_model(self) -> LightFMRecommender:
        return small_lightfm()


class TestContentContract(RecommenderContract):
    def make_model(self) -> ContentRecommender:
        return ContentRecommender()


@pytest.fixture(scope="module")
def data_with_new_item() -> TrainingData:
    """The two-group data plus a catalog item nobody bought, described like group-0 items."""
    new_item = pl.DataFrame(
        {
            col.ITEM_ID: [NEW_ITEM],
            col.TITLE: ["red thing"],
            col.CATEGORY: ["even"],
            col.PRICE: [5.0],
        }
    )
    items = pl.concat([two_group_items(), new_item])
    return build_training_data(two_group_interactions(), items=items)


@pytest.fixture(scope="module")
def lightfm_with_new_item(data_with_new_item: TrainingData) -> LightFMRecommender:
    return small_lightfm().fit(data_with_new_item)


def test_lightfm_recommends_a_new_item_to_the_group_its_content_resembles(
    lightfm_with_new_item: LightFMRecommender, data_with_new_item: TrainingData
) -> None:
    data = data_with_new_item
    new_item = data.item_ids.index_of(NEW_ITEM)
    members = np.arange(data.n_members)
    ids, _ = lightfm_with_new_item.recommend(members, data.matrix, n=5, exclude=data.matrix)
    recommended = (ids == new_item).any(axis=1)
    group_zero = member_group(data, members) == 0
    assert recommended[group_zero].mean() >= 0.9
    assert not recommended[~group_zero].any()


def test_lightfm_new_item_vectors_place_a_catalog_only_item_as_the_fit_did(
    lightfm_with_new_item: LightFMRecommender, data_with_new_item: TrainingData
) -> None:
    assert data_with_new_item.item_features is not None
    new_item = data_with_new_item.item_ids.index_of(NEW_ITEM)
    content = data_with_new_item.item_features.matrix[[new_item]]
    np.testing.assert_allclose(
        lightfm_with_new_item.new_item_vectors(content),
        lightfm_with_new_item.item_vectors()[[new_item]],
        rtol=1e-5,
        atol=1e-6,
    )


def test_lightfm_vector_inner_products_are_the_scores(
    lightfm_with_new_item: LightFMRecommender, data_with_new_item: TrainingData
) -> None:
    members = np.array([0, 1, -1])
    histories = data_with_new_item.matrix[[0, 1, 2]]
    np.testing.assert_allclose(
        lightfm_with_new_item.member_vectors(members, histories)
        @ lightfm_with_new_item.item_vectors().T,
        lightfm_with_new_item.score(members, histories),
        rtol=1e-5,
        atol=1e-5,
    )


def test_lightfm_new_member_known_only_by_segment_gets_the_segments_group() -> None:
    interactions = two_group_interactions()
    members = interactions.get_column(col.MEMBER_ID).unique()
    segments = pl.DataFrame(
        {
            col.MEMBER_ID: members,
            "segment": [f"group{int(member[1:]) % 2}" for member in members],
        }
    )
    data = build_training_data(interactions, items=two_group_items(), member_segment_of=segments)
    model = small_lightfm().fit(data)
    empty_history = sp.csr_matrix((1, data.n_items), dtype=np.float32)
    for code, name in enumerate(data.segment_names):
        member = model.fold_in(empty_history, segments=np.array([code]))
        scores = np.append(member, 1.0) @ model.item_vectors().T
        top = np.argsort(-scores)[:3]
        assert (item_group(data, top) == int(name[-1])).all()


def test_content_similar_items_share_the_category(two_group_data: TrainingData) -> None:
    model = ContentRecommender().fit(two_group_data)
    items = np.arange(two_group_data.n_items)
    ids, _ = model.similar_items(items, 5)
    assert (ids >= 0).all()
    assert (
        item_group(two_group_data, ids.ravel()) == np.repeat(item_group(two_group_data, items), 5)
    ).all()


def test_content_model_refuses_data_without_item_features() -> None:
    data = build_training_data(two_group_interactions())
    with pytest.raises(ModelFitError, match="--items"):
        ContentRecommender().fit(data)
