"""Item content features: blocks, alignment with the id map, weighting and normalisation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from features.columns import BRAND, CATEGORY, DESCRIPTION, ITEM_ID, PRICE, TAGS, TITLE
from features.errors import ConfigError
from features.ids import IdMap
from features.item_content import (
    BlockWeights,
    ItemContentConfig,
    ItemFeatures,
    build_item_features,
)

EVERY_WORD = ItemContentConfig(min_df=1)


def catalog() -> pl.DataFrame:
    return pl.DataFrame(
        {
            ITEM_ID: ["lamp", "mug", "rug"],
            TITLE: ["Brass lantern", "Tea mug", "Wool rug"],
            DESCRIPTION: ["A brass lantern for the garden", None, "Soft wool"],
            CATEGORY: ["Home", "Kitchen", "Home"],
            BRAND: ["Acme", None, "Loom"],
            PRICE: [30.0, 5.0, None],
            TAGS: ["gift|garden", " gift |gift|", None],
        }
    )


def row_of(features: ItemFeatures, item_ids: IdMap, item: str) -> dict[str, float]:
    """The non-zero features of one item, by name."""
    row = features.matrix.getrow(item_ids.index_of(item))
    return {
        features.feature_names[column]: float(value)
        for column, value in zip(row.indices, row.data, strict=True)
    }


def test_features_name_every_block_with_its_prefix() -> None:
    item_ids = IdMap.from_values(["lamp", "mug", "rug"])
    names = build_item_features(catalog(), item_ids, EVERY_WORD).feature_names
    assert {"word:lantern", "word:brass", "word:tea", "word:wool"} <= set(names)
    assert {"tag:gift", "tag:garden", "category:Home", "category:Kitchen"} <= set(names)
    assert {"brand:Acme", "brand:Loom", "price_band:0", "price_band:4"} <= set(names)
    assert "word:the" not in names  # English stop word


def test_rows_follow_the_id_map_not_the_catalog_order() -> None:
    item_ids = IdMap.from_values(["rug", "lamp", "mug"])
    features = build_item_features(catalog(), item_ids, EVERY_WORD)
    assert features.matrix.shape == (3, len(features.feature_names))
    assert "word:wool" in row_of(features, item_ids, "rug")
    assert "word:lantern" in row_of(features, item_ids, "lamp")
    assert set(row_of(features, item_ids, "mug")) >= {"word:tea", "category:Kitchen"}


def test_mapped_items_missing_from_the_catalog_get_all_zero_rows() -> None:
    item_ids = IdMap.from_values(["ghost", "lamp"])
    features = build_item_features(catalog(), item_ids, EVERY_WORD)
    assert features.matrix.getrow(0).nnz == 0
    assert features.matrix.getrow(1).nnz > 0


def test_catalog_items_outside_the_map_contribute_no_vocabulary() -> None:
    features = build_item_features(catalog(), IdMap.from_values(["mug"]), EVERY_WORD)
    assert not any("wool" in name or "Home" in name for name in features.feature_names)


def test_rows_are_unit_length_float32_csr() -> None:
    features = build_item_features(catalog(), IdMap.from_values(["lamp", "mug", "rug"]))
    assert isinstance(features.matrix, sp.csr_matrix)
    assert features.matrix.dtype == np.float32
    norms = sp.linalg.norm(features.matrix, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)


def test_columns_absent_from_the_catalog_are_skipped() -> None:
    retail = pl.DataFrame({ITEM_ID: ["a", "b"], TITLE: ["RED MUG", "BLUE MUG"], PRICE: [1.0, 2.0]})
    features = build_item_features(retail, IdMap.from_values(["a", "b"]), EVERY_WORD)
    prefixes = {name.split(":")[0] for name in features.feature_names}
    assert prefixes == {"word", "price_band"}


def test_catalog_with_only_ids_gives_zero_width_matrix() -> None:
    features = build_item_features(pl.DataFrame({ITEM_ID: ["a"]}), IdMap.from_values(["a", "b"]))
    assert features.matrix.shape == (2, 0)
    assert features.feature_names == []


def test_price_bands_cut_at_price_quantiles() -> None:
    prices = pl.DataFrame(
        {ITEM_ID: [f"i{n}" for n in range(1, 11)], PRICE: [float(n) for n in range(1, 11)]}
    )
    item_ids = IdMap.from_values(prices.get_column(ITEM_ID))
    features = build_item_features(prices, item_ids, ItemContentConfig(price_bands=5))
    bands = [next(iter(row_of(features, item_ids, f"i{n}"))) for n in range(1, 11)]
    assert bands == [f"price_band:{n // 2}" for n in range(10)]


def test_items_without_price_get_no_price_band() -> None:
    item_ids = IdMap.from_values(["lamp", "mug", "rug"])
    features = build_item_features(catalog(), item_ids, EVERY_WORD)
    assert not any(name.startswith("price_band") for name in row_of(features, item_ids, "rug"))


def test_tags_are_split_stripped_and_counted_once() -> None:
    item_ids = IdMap.from_values(["mug"])
    features = build_item_features(catalog(), item_ids, EVERY_WORD)
    assert [name for name in features.feature_names if name.startswith("tag:")] == ["tag:gift"]


def test_block_weights_set_each_blocks_share_of_the_row() -> None:
    items = pl.DataFrame({ITEM_ID: ["a"], CATEGORY: ["Home"], BRAND: ["Acme"]})
    config = ItemContentConfig(block_weights=BlockWeights(category=3.0, brand=1.0))
    item_ids = IdMap.from_values(["a"])
    row = row_of(build_item_features(items, item_ids, config), item_ids, "a")
    assert row == pytest.approx({"category:Home": 3 / np.sqrt(10), "brand:Acme": 1 / np.sqrt(10)})


def test_block_weight_zero_leaves_the_block_out() -> None:
    config = ItemContentConfig(min_df=1, block_weights=BlockWeights(words=0.0, price_band=0.0))
    features = build_item_features(catalog(), IdMap.from_values(["lamp", "mug"]), config)
    assert not any(name.startswith(("word:", "price_band:")) for name in features.feature_names)


def test_min_df_drops_words_of_fewer_items() -> None:
    items = pl.DataFrame(
        {
            ITEM_ID: ["a", "b", "c"],
            TITLE: ["red lantern", "blue lantern", "red mug"],
            DESCRIPTION: ["lantern lantern", None, None],  # repeats within one item do not count
        }
    )
    features = build_item_features(items, IdMap.from_values(["a", "b", "c"]))
    assert features.feature_names == ["word:lantern", "word:red"]


def test_text_without_usable_words_gives_no_word_block() -> None:
    items = pl.DataFrame({ITEM_ID: ["a", "b"], TITLE: ["the", None], CATEGORY: ["X", "Y"]})
    features = build_item_features(items, IdMap.from_values(["a", "b"]), EVERY_WORD)
    assert features.feature_names == ["category:X", "category:Y"]


def test_first_catalog_row_wins_for_a_repeated_item_id() -> None:
    items = pl.DataFrame({ITEM_ID: ["a", "a"], CATEGORY: ["First", "Second"]})
    features = build_item_features(items, IdMap.from_values(["a"]))
    assert features.feature_names == ["category:First"]


@pytest.mark.parametrize(
    "settings_",
    [{"min_df": 0}, {"max_tfidf_features": 0}, {"price_bands": 0}],
)
def test_config_rejects_counts_below_one(settings_: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="must be at least 1"):
        ItemContentConfig(**settings_)


@pytest.mark.parametrize("weight", [-1.0, float("inf")])
def test_block_weights_must_be_finite_and_non_negative(weight: float) -> None:
    with pytest.raises(ConfigError, match="block weights"):
        BlockWeights(tags=weight)


optional_text = st.one_of(st.none(), st.sampled_from(["red", "blue", "Home", "gift|red", ""]))
catalog_rows = st.lists(
    st.tuples(
        st.sampled_from([f"i{n}" for n in range(8)]),
        st.one_of(st.none(), st.sampled_from(["red lamp", "blue mug", "red mug", "lamp"])),
        optional_text,
        optional_text,
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=100.0)),
    ),
    max_size=12,
)


def random_catalog(
    rows: list[tuple[str, str | None, str | None, str | None, float | None]],
) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            ITEM_ID: pl.Utf8,
            TITLE: pl.Utf8,
            CATEGORY: pl.Utf8,
            TAGS: pl.Utf8,
            PRICE: pl.Float64,
        },
        orient="row",
    )


@settings(max_examples=60, deadline=None)
@given(
    rows=catalog_rows,
    mapped=st.lists(st.sampled_from([f"i{n}" for n in range(10)]), unique=True),
    data=st.data(),
)
def test_features_are_aligned_with_any_id_map_order(
    rows: list[tuple[str, str | None, str | None, str | None, float | None]],
    mapped: list[str],
    data: st.DataObject,
) -> None:
    items = random_catalog(rows)
    item_ids = IdMap.from_values(mapped)
    features = build_item_features(items, item_ids, EVERY_WORD)
    assert features.matrix.shape == (len(mapped), len(features.feature_names))
    assert len(set(features.feature_names)) == len(features.feature_names)
    norms = sp.linalg.norm(features.matrix, axis=1)
    assert np.all(np.isclose(norms, 0.0) | np.isclose(norms, 1.0, rtol=1e-5))
    catalogued = set(items.get_column(ITEM_ID).to_list())
    for item in set(mapped) - catalogued:
        assert features.matrix.getrow(item_ids.index_of(item)).nnz == 0
    shuffled = IdMap.from_values(data.draw(st.permutations(mapped)))
    reordered = build_item_features(items, shuffled, EVERY_WORD)
    assert reordered.feature_names == features.feature_names
    for item in mapped:
        np.testing.assert_allclose(
            reordered.matrix.getrow(shuffled.index_of(item)).toarray(),
            features.matrix.getrow(item_ids.index_of(item)).toarray(),
            rtol=1e-5,
        )
