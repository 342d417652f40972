"""What a synthetic store depends on (:class:`StoreConfig`), and the check that it makes sense."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.errors import ConfigError
from features.synthetic.departments import BRAND_NAMES, CATEGORY_SPECS

__all__ = ["FUNNEL_SHARES", "StoreConfig", "validate_config"]

#: Target shares of views, clicks, carts and purchases among all events (a typical web funnel).
FUNNEL_SHARES: Final[tuple[float, ...]] = (0.60, 0.25, 0.09, 0.06)


@dataclass(frozen=True)
class StoreConfig:
    """Everything the generated store depends on: the same config always gives the same files."""

    members: int = 3000
    items: int = 500
    #: Exact number of rows in ``interactions.parquet``.
    events: int = 150_000
    seed: int = 42
    #: Departments; a catalog with fewer active items than this uses one per item.
    categories: int = 30
    brands_per_category: int = 8
    #: Exponent of the Zipf law of item popularity within a category (0 = all equally popular).
    popularity_exponent: float = 1.0
    #: Mean Dirichlet alpha of member tastes over categories; small = a few favourite categories.
    taste_concentration: float = 0.15
    #: Sigma of the lognormal activity rate: larger = a few very active members, many light ones.
    activity_spread: float = 1.3
    #: Members whose activity stops at least 180 days before the end of the period.
    lapsed_share: float = 0.2
    #: Members who joined in the last 30 days (they have a short history).
    new_member_share: float = 0.05
    #: Members who joined in the last two weeks and have no interactions at all (at least one).
    cold_member_share: float = 0.01
    #: Items launched in the last week with no interactions at all (at least one).
    cold_item_share: float = 0.01
    #: Items no longer available (discontinued, but with history).
    unavailable_share: float = 0.03
    #: Planted co-purchase bundles of 2–3 popular items; fewer if the catalog cannot hold them.
    bundles: int = 20
    #: Chance that buying one bundle item adds the rest of its bundle to the same order.
    bundle_attach_rate: float = 0.8
    #: Consumable items per member that are bought again and again.
    favourites_per_member: int = 3
    #: Share of engagements that are re-buys of a favourite (always a full funnel to purchase).
    repeat_share: float = 0.03
    #: Mean number of items a member looks at per session.
    session_length: float = 4.0
    #: Members simulated per chunk: bounds memory. Part of the random streams, like the seed.
    members_per_chunk: int = 20_000


_POSITIVE_INTS: Final = (
    "members", "items", "events", "categories", "brands_per_category", "favourites_per_member",
    "members_per_chunk",
)  # fmt: skip
_SHARES: Final = (
    "lapsed_share", "new_member_share", "cold_member_share", "cold_item_share",
    "unavailable_share",
)  # fmt: skip


def validate_config(config: StoreConfig) -> None:
    """Reject a config that cannot describe a store, naming the option that is wrong."""
    for name in _POSITIVE_INTS:
        _require_int(name, getattr(config, name), minimum=1)
    _require_int("seed", config.seed, minimum=0)
    _require_int("bundles", config.bundles, minimum=0)
    for name in _SHARES:
        _require_number(name, getattr(config, name), low=0.0, high=1.0, high_inclusive=False)
    _require_number("bundle_attach_rate", config.bundle_attach_rate, low=0.0, high=1.0)
    purchase_reach = FUNNEL_SHARES[-1] / FUNNEL_SHARES[0]
    _require_number(
        "repeat_share", config.repeat_share, low=0.0, high=purchase_reach, high_inclusive=False
    )
    _require_number("popularity_exponent", config.popularity_exponent, low=0.0, high=5.0)
    _require_number("activity_spread", config.activity_spread, low=0.0, high=5.0)
    _require_number("taste_concentration", config.taste_concentration, low=1e-3, high=100.0)
    _require_number("session_length", config.session_length, low=1.0, high=1000.0)
    if config.categories > len(CATEGORY_SPECS):
        raise ConfigError(
            f"categories must be at most {len(CATEGORY_SPECS)}, got {config.categories}"
        )
    if config.brands_per_category > len(BRAND_NAMES):
        raise ConfigError(
            f"brands_per_category must be at most {len(BRAND_NAMES)}, "
            f"got {config.brands_per_category}"
        )
    lifecycle = config.lapsed_share + config.new_member_share + config.cold_member_share
    if lifecycle >= 1.0:
        raise ConfigError(
            "lapsed_share + new_member_share + cold_member_share must be below 1, "
            f"got {lifecycle:g}"
        )


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_number(
    name: str, value: object, *, low: float, high: float, high_inclusive: bool = True
) -> None:
    is_number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    in_range = is_number and low <= value and (value <= high if high_inclusive else value < high)
    if not in_range:
        bracket = "]" if high_inclusive else ")"
        raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}{bracket}, got {value!r}")
