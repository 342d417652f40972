"""The catalog: which department each item is in, its price and popularity, and the bundles.

The numeric side (:class:`Catalog`) drives the simulation; the human side (:func:`catalog_table`:
brands, titles, tags, descriptions, launch dates) is what ``items.parquet`` holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.columns import (
    AVAILABLE,
    BRAND,
    CATEGORY,
    DESCRIPTION,
    ITEM_ID,
    PRICE,
    RELEASED_AT,
    REPEATABLE,
    TAGS,
    TITLE,
)
from features.synthetic.config import StoreConfig
from features.synthetic.departments import (
    ADJECTIVES,
    BRAND_NAMES,
    CATEGORY_SPECS,
    CLAIMS,
    GENERAL_TAGS,
    CategorySpec,
)
from features.synthetic.period import END_US, START_US, US_PER_DAY
from features.synthetic.sampling import (
    GroupedSampler,
    cold_count,
    uniform_times,
    zipf_weights,
)

__all__ = ["Catalog", "build_catalog", "catalog_table"]

#: Cold-start items launch in the last week.
_COLD_ITEM_WINDOW_US: Final = 7 * US_PER_DAY
#: The rest of the catalog launched during the two years before the period.
_CATALOG_HISTORY_US: Final = 730 * US_PER_DAY
#: Probability that a bundle has three items rather than two.
_TRIPLE_BUNDLE_RATE: Final = 0.4
#: Bundles are drawn from this top share of the catalog by popularity ("reasonably popular").
_BUNDLE_POOL_SHARE: Final = 0.1
#: At most this share of the catalog is bundled: a small catalog gets fewer bundles.
_BUNDLE_MAX_SHARE: Final = 0.2
#: The top share of the catalog by popularity that carries a "bestseller" tag.
_BESTSELLER_SHARE: Final = 0.01
_GENERAL_TAG_RATE: Final = 0.3


@dataclass(frozen=True)
class Catalog:
    """The numeric side of the catalog: what the event simulation needs, item by item."""

    category: np.ndarray
    price: np.ndarray
    consumable: np.ndarray
    cold: np.ndarray
    popularity: np.ndarray
    specs: tuple[CategorySpec, ...]
    #: Demand share per category (sums to 1).
    category_share: np.ndarray
    #: Draws an active item of a given category by its within-category popularity.
    item_sampler: GroupedSampler
    #: Bundle index per item, or -1.
    bundle_of: np.ndarray
    #: Items per bundle, padded with -1 to three columns.
    bundle_items: np.ndarray


def build_catalog(config: StoreConfig, rng: np.random.Generator) -> Catalog:
    """Draw categories, cold-start items, popularity and bundles for every item."""
    n_cold = cold_count(config.cold_item_share, config.items, keep=1)
    n_active = config.items - n_cold
    specs = CATEGORY_SPECS[: min(config.categories, n_active)]
    weights = np.array([spec.weight for spec in specs], dtype=np.float64)
    category_share = weights / weights.sum()
    cold = np.zeros(config.items, dtype=bool)
    cold[rng.choice(config.items, size=n_cold, replace=False)] = True
    category = _assign_categories(rng, cold, category_share)
    within_rank = _rank_within_category(rng, category, cold)
    within_weight = np.where(cold, 0.0, zipf_weights(within_rank, config.popularity_exponent))
    category_total = np.bincount(category, weights=within_weight, minlength=len(specs))
    popularity = category_share[category] * within_weight / category_total[category]
    bundle_of, bundle_items = _plant_bundles(rng, popularity, n_active, config.bundles)
    return Catalog(
        category=category,
        price=_list_prices(rng, category, specs),
        consumable=np.array([spec.consumable for spec in specs])[category],
        cold=cold,
        popularity=popularity,
        specs=specs,
        category_share=category_share,
        item_sampler=_item_sampler(category, within_weight, cold),
        bundle_of=bundle_of,
        bundle_items=bundle_items,
    )


def _assign_categories(
    rng: np.random.Generator, cold: np.ndarray, category_share: np.ndarray
) -> np.ndarray:
    """Big departments hold more items (but less than in proportion to demand); every category
    gets at least one active item so that a member's favourite category is never empty."""
    assortment = np.sqrt(category_share) / np.sqrt(category_share).sum()
    category = rng.choice(len(category_share), size=len(cold), p=assortment)
    guaranteed = rng.choice(np.flatnonzero(~cold), size=len(category_share), replace=False)
    category[guaranteed] = np.arange(len(category_share))
    return category


def _rank_within_category(
    rng: np.random.Generator, category: np.ndarray, cold: np.ndarray
) -> np.ndarray:
    """A random popularity rank (0 = top seller) of each active item inside its category."""
    order = np.lexsort((rng.random(len(category)), cold, category))
    sorted_category = category[order]
    starts = np.searchsorted(sorted_category, sorted_category, side="left")
    rank = np.empty(len(category), dtype=np.float64)
    rank[order] = np.arange(len(category)) - starts
    return rank


def _item_sampler(category: np.ndarray, weight: np.ndarray, cold: np.ndarray) -> GroupedSampler:
    active = np.flatnonzero(~cold)
    order = active[np.argsort(category[active], kind="stable")]
    return GroupedSampler.build(category[order].astype(np.float64), weight[order], order)


def _list_prices(
    rng: np.random.Generator, category: np.ndarray, specs: tuple[CategorySpec, ...]
) -> np.ndarray:
    """Lognormal prices around each department's median, ending in .99 like shelf prices."""
    median = np.array([spec.median_price for spec in specs])[category]
    raw = median * rng.lognormal(0.0, 0.45, size=len(category))
    return np.round(np.ceil(raw) - 0.01, 2)


def _plant_bundles(
    rng: np.random.Generator, popularity: np.ndarray, n_active: int, requested: int
) -> tuple[np.ndarray, np.ndarray]:
    """Group reasonably popular items into disjoint bundles of two or three.

    Bundle items are drawn at random from the top of the catalog by popularity, so that each
    bundle is bought often enough for co-purchase mining to have something to find.
    """
    sizes = np.where(rng.random(requested) < _TRIPLE_BUNDLE_RATE, 3, 2)
    sizes = sizes[np.cumsum(sizes) <= _BUNDLE_MAX_SHARE * n_active]
    pool_size = min(n_active, max(int(sizes.sum()) * 2, math.ceil(_BUNDLE_POOL_SHARE * n_active)))
    pool = np.argsort(-popularity, kind="stable")[:pool_size]
    chosen = rng.permutation(pool)[: int(sizes.sum())]
    bundle_items = np.full((len(sizes), 3), -1, dtype=np.int64)
    slots = np.arange(3) < sizes[:, None]
    bundle_items[slots] = chosen
    bundle_of = np.full(len(popularity), -1, dtype=np.int64)
    bundle_of[chosen] = np.repeat(np.arange(len(sizes)), sizes)
    return bundle_of, bundle_items


def catalog_table(
    config: StoreConfig, catalog: Catalog, item_ids: pa.Array, rng: np.random.Generator
) -> pa.Table:
    """The human side of the catalog: brands, titles, tags, descriptions, launch dates."""
    n = len(catalog.category)
    category_names = pa.array([spec.name for spec in catalog.specs]).take(catalog.category)
    brands = _item_brands(rng, catalog.category, len(catalog.specs), config.brands_per_category)
    adjectives = pa.array(ADJECTIVES).take(rng.integers(len(ADJECTIVES), size=n))
    nouns = _pick_from_vocabulary(rng, catalog.category, [spec.nouns for spec in catalog.specs])
    claims = pa.array(CLAIMS).take(rng.integers(len(CLAIMS), size=n))
    description = pc.binary_join_element_wise(
        adjectives, pc.utf8_lower(nouns), "by", brands, "from our",
        pc.utf8_lower(category_names), "range.", claims, " ",
    )  # fmt: skip
    unavailable = (rng.random(n) < config.unavailable_share) & ~catalog.cold
    unavailable &= catalog.bundle_of < 0  # planted bundles stay buyable
    # Launch dates (RELEASED_AT): cold-start items in the period's last week, the rest before it.
    released = np.where(
        catalog.cold,
        uniform_times(rng, END_US - _COLD_ITEM_WINDOW_US, END_US, n),
        uniform_times(rng, START_US - _CATALOG_HISTORY_US, START_US, n),
    )
    return pa.table(
        {
            ITEM_ID: item_ids,
            TITLE: pc.binary_join_element_wise(brands, adjectives, nouns, " "),
            CATEGORY: category_names,
            BRAND: brands,
            PRICE: pa.array(catalog.price, type=pa.float64()),
            TAGS: _item_tags(rng, catalog),
            DESCRIPTION: description,
            AVAILABLE: pa.array(~unavailable),
            REPEATABLE: pa.array(catalog.consumable),
            RELEASED_AT: pa.array(released, type=pa.timestamp("us")),
        }
    )


def _item_brands(
    rng: np.random.Generator, category: np.ndarray, n_categories: int, per_category: int
) -> pa.Array:
    """Each department stocks its own set of brands; a few big brands carry most items."""
    lineup = np.stack(
        [
            rng.choice(len(BRAND_NAMES), size=per_category, replace=False)
            for _ in range(n_categories)
        ]
    )
    share = zipf_weights(np.arange(per_category, dtype=np.float64), 1.0)
    slot = rng.choice(per_category, size=len(category), p=share / share.sum())
    return pa.array(BRAND_NAMES).take(lineup[category, slot])


def _pick_from_vocabulary(
    rng: np.random.Generator, category: np.ndarray, vocabularies: list[tuple[str, ...]]
) -> pa.Array:
    """One word per item from its category's own vocabulary (vocabularies differ in length)."""
    sizes = np.array([len(words) for words in vocabularies])
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    picks = offsets[category] + (rng.random(len(category)) * sizes[category]).astype(np.int64)
    return pa.array([word for words in vocabularies for word in words]).take(picks)


def _item_tags(rng: np.random.Generator, catalog: Catalog) -> pa.Array:
    """Two distinct category tags, sometimes a general tag, and a status tag where one applies."""
    category = catalog.category
    vocabularies = [spec.tags for spec in catalog.specs]
    sizes = np.array([len(words) for words in vocabularies])[category]
    offsets = np.r_[0, np.cumsum([len(words) for words in vocabularies])[:-1]][category]
    first = (rng.random(len(category)) * sizes).astype(np.int64)
    second = (first + 1 + (rng.random(len(category)) * (sizes - 1)).astype(np.int64)) % sizes
    words = pa.array([word for words in vocabularies for word in words])
    general = rng.integers(len(GENERAL_TAGS), size=len(category))
    has_general = rng.random(len(category)) < _GENERAL_TAG_RATE
    bestseller_cut = np.quantile(catalog.popularity, 1.0 - _BESTSELLER_SHARE)
    status = np.where(catalog.cold, 1, np.where(catalog.popularity >= bestseller_cut, 0, -1))
    return pc.binary_join_element_wise(
        words.take(offsets + first),
        words.take(offsets + second),
        pa.array(GENERAL_TAGS).take(pa.array(general, mask=~has_general)),
        pa.array(["bestseller", "new-arrival"]).take(pa.array(status, mask=status < 0)),
        "|",
        null_handling="skip",
    )
