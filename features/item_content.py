"""Item catalog -> sparse content features, for cold-start items and content-aware models.

Each available catalog column becomes one block of features: TF-IDF words from title and
description, multi-hot tags, one-hot category, brand and price band. Every block is scaled to
unit length per item and multiplied by its block weight before the blocks are joined and the
whole row is L2-normalised; so the weights, not the number of words or tags an item happens to
have, decide how much each kind of evidence counts in a cosine similarity.

Columns the catalog lacks are skipped (Online Retail only has a title and a price), and items
of the id map that the catalog does not describe get all-zero rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from features.catalog import ITEM_INDEX, catalog_rows
from features.columns import BRAND, CATEGORY, DESCRIPTION, PRICE, TAGS, TITLE
from features.errors import ConfigError
from features.ids import IdMap

__all__ = ["BlockWeights", "ItemContentConfig", "ItemFeatures", "build_item_features"]

#: Separator of the values in the catalog's ``tags`` column.
TAG_SEPARATOR = "|"

_ROW = "__content_row"
_VALUE = "__content_value"


class BlockWeights(BaseModel):
    """Relative importance of each feature block; 0 leaves a block out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    words: float = 1.0
    tags: float = 1.0
    category: float = 1.0
    brand: float = 1.0
    price_band: float = 0.5

    @model_validator(mode="after")
    def _finite_and_non_negative(self) -> BlockWeights:
        weights = self.model_dump()
        if not all(math.isfinite(weight) and weight >= 0 for weight in weights.values()):
            raise ConfigError(f"block weights must be finite and at least 0, got {weights}")
        return self


class ItemContentConfig(BaseModel):
    """How item content is turned into features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Keep at most this many words, the most frequent ones (bounds memory on large catalogs).
    max_tfidf_features: int = 5000
    #: Drop words that appear in fewer items than this (typos, codes, one-off names).
    min_df: int = 2
    #: Number of price bands, cut at price quantiles so that bands hold similar item counts.
    price_bands: int = 5
    stop_words: Literal["english"] | None = "english"
    block_weights: BlockWeights = Field(default_factory=BlockWeights)

    @field_validator("max_tfidf_features", "min_df", "price_bands")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ConfigError(f"{info.field_name} must be at least 1, got {value}")
        return value


@dataclass(frozen=True, eq=False)  # sparse matrices have no single truth value to compare
class ItemFeatures:
    """Content features, one row per id of the item map (row i is internal item i)."""

    matrix: sp.csr_matrix
    feature_names: list[str]


@dataclass(frozen=True, eq=False)
class _Block:
    """Features of one kind (words, tags, ...) for the catalog rows being encoded."""

    matrix: sp.csr_matrix
    names: list[str]


_BlockBuilder = Callable[[pl.DataFrame, ItemContentConfig], _Block | None]


_DEFAULT_CONFIG = ItemContentConfig()  # frozen, so one shared default is safe


def build_item_features(
    items: pl.DataFrame, item_ids: IdMap, config: ItemContentConfig = _DEFAULT_CONFIG
) -> ItemFeatures:
    """Encode the catalog as an L2-normalised float32 CSR matrix aligned with ``item_ids``.

    Catalog rows of items outside the map are ignored (vocabularies and price bands are learnt
    from the mapped items only); if an item id repeats, its first row is used.
    """
    catalog = catalog_rows(items, item_ids)
    blocks = _weighted_blocks(catalog, config)
    joined = (
        sp.hstack([block.matrix for block in blocks], format="csr")
        if blocks
        else sp.csr_matrix((catalog.height, 0))
    )
    placed = _place_rows(joined, catalog.get_column(ITEM_INDEX).to_numpy(), len(item_ids))
    return ItemFeatures(
        matrix=sp.csr_matrix(_unit_rows(placed), dtype=np.float32),
        feature_names=[name for block in blocks for name in block.names],
    )


def _place_rows(matrix: sp.csr_matrix, row_indices: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """Move catalog row i to row ``row_indices[i]`` of an ``n_rows`` matrix; others stay zero."""
    placement = sp.csr_matrix(
        (np.ones(len(row_indices)), (row_indices, np.arange(len(row_indices)))),
        shape=(n_rows, len(row_indices)),
    )
    return sp.csr_matrix(placement @ matrix)


def _weighted_blocks(catalog: pl.DataFrame, config: ItemContentConfig) -> list[_Block]:
    """The non-empty blocks with a positive weight, each multiplied by its weight."""
    weights = config.block_weights
    builders: list[tuple[float, _BlockBuilder]] = [
        (weights.words, _word_block),
        (weights.tags, _tag_block),
        (weights.category, partial(_value_block, column=CATEGORY)),
        (weights.brand, partial(_value_block, column=BRAND)),
        (weights.price_band, _price_band_block),
    ]
    blocks = []
    for weight, build in builders:
        block = build(catalog, config) if weight > 0 else None
        if block is not None:
            blocks.append(_Block(matrix=block.matrix * weight, names=block.names))
    return blocks


def _word_block(catalog: pl.DataFrame, config: ItemContentConfig) -> _Block | None:
    """TF-IDF of title and description together (rows come out L2-normalised)."""
    text_columns = [pl.col(name).cast(pl.Utf8) for name in (TITLE, DESCRIPTION) if name in catalog]
    if not text_columns:
        return None
    documents = catalog.select(
        pl.concat_str(text_columns, separator=" ", ignore_nulls=True).fill_null("")
    ).to_series()
    # Imported here: scikit-learn takes about a second to import, and only runs that build
    # text features (content-aware models) need it.
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        max_features=config.max_tfidf_features,
        min_df=config.min_df,
        stop_words=config.stop_words,
        dtype=np.float32,
    )
    try:
        matrix = vectorizer.fit_transform(documents.to_list())
    except ValueError:  # scikit-learn's signal that no word is left (no text, or all too rare)
        return None
    names = [f"word:{word}" for word in vectorizer.get_feature_names_out()]
    return _Block(matrix=sp.csr_matrix(matrix), names=names)


def _tag_block(catalog: pl.DataFrame, config: ItemContentConfig) -> _Block | None:
    """Multi-hot tags: an item is described by each of its tags equally."""
    if TAGS not in catalog:
        return None
    tags = catalog.select(
        pl.col(TAGS)
        .cast(pl.Utf8)
        .str.split(TAG_SEPARATOR)
        .list.eval(pl.element().str.strip_chars())
    ).to_series()
    return _indicator_block(tags, "tag")


def _value_block(catalog: pl.DataFrame, config: ItemContentConfig, *, column: str) -> _Block | None:
    """One-hot encoding of a single-valued text column such as category or brand."""
    if column not in catalog:
        return None
    values = catalog.select(pl.concat_list(pl.col(column).cast(pl.Utf8).str.strip_chars()))
    return _indicator_block(values.to_series(), column)


def _price_band_block(catalog: pl.DataFrame, config: ItemContentConfig) -> _Block | None:
    """One-hot price band: band b holds the prices that exceed exactly b quantile cut points.

    Cut points that coincide (many items at one price) are merged, so there may be fewer
    bands than configured. Items without a price get no band.
    """
    if PRICE not in catalog:
        return None
    prices = catalog.get_column(PRICE).cast(pl.Float64).fill_nan(None)
    known = prices.drop_nulls().to_numpy()
    if known.size == 0:
        return None
    quantiles = np.linspace(0.0, 1.0, config.price_bands + 1)[1:-1]
    cut_points = np.unique(np.quantile(known, quantiles))
    bands = pl.Series(np.searchsorted(cut_points, prices.to_numpy(), side="left")).cast(pl.Utf8)
    labels = pl.select(pl.concat_list(pl.when(prices.is_not_null()).then(bands))).to_series()
    return _indicator_block(labels, "price_band")


def _indicator_block(values: pl.Series, prefix: str) -> _Block | None:
    """Binary item x value matrix from a list-of-strings column, rows scaled to unit length.

    Nulls and empty strings are not values; the vocabulary is sorted so that feature order does
    not depend on catalog order.
    """
    pairs = (
        pl.DataFrame({_VALUE: values})
        .with_row_index(_ROW)
        .explode(_VALUE)
        .filter(pl.col(_VALUE).is_not_null() & (pl.col(_VALUE) != ""))
        .unique()
    )
    if pairs.is_empty():
        return None
    vocabulary = pairs.get_column(_VALUE).unique().sort()
    columns = pairs.get_column(_VALUE).cast(pl.Enum(vocabulary)).to_physical().to_numpy()
    rows = pairs.get_column(_ROW).to_numpy()
    matrix = sp.csr_matrix(
        (np.ones(len(rows)), (rows, columns)), shape=(len(values), len(vocabulary))
    )
    return _Block(
        matrix=_unit_rows(matrix),
        names=[f"{prefix}:{value}" for value in vocabulary.to_list()],
    )


def _unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Scale every non-zero row to unit L2 length; all-zero rows stay zero."""
    norms = sp.linalg.norm(matrix, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)
