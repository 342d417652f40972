"""Shopping sessions, one chunk of members at a time: browse, add bundle mates, cut, time.

A member's events are a sequence of *engagements* — one item looked at in one session — and an
engagement goes down the funnel to some depth (1 = view only ... 4 = purchased). Because the
rows of an engagement are a prefix of the funnel, cutting a member's sequence at its budget
always leaves a valid funnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.synthetic.catalog import Catalog
from features.synthetic.config import FUNNEL_SHARES, StoreConfig
from features.synthetic.members import Members
from features.synthetic.period import END_US, US_PER_DAY, US_PER_HOUR, US_PER_SECOND
from features.synthetic.sampling import row_sampler, uniform_times, zipf_weights

__all__ = ["ChunkEvents", "simulate_chunk"]

#: Relative traffic by hour of day (UTC): quiet nights, a lunch bump, an evening peak.
_HOURLY_TRAFFIC: Final = np.array(
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.0, 3.5, 4.0, 4.5,
     5.0, 4.5, 4.0, 4.0, 4.5, 5.5, 7.0, 8.0, 8.0, 7.0, 5.0, 2.5]
)  # fmt: skip

#: Share of a session's engagements that stay in the session's category (people shop a topic).
_SESSION_FOCUS: Final = 0.6
#: Share of taste spread evenly over all categories, so every category stays reachable.
_TASTE_EXPLORATION: Final = 0.02
#: Promotions: how often an engagement sees a discounted price, and the discount levels.
_PROMO_RATE: Final = 0.15
_PROMO_FACTORS: Final = np.array([0.9, 0.8, 0.75, 0.7])


@dataclass(frozen=True)
class _Engagements:
    """One row per (member, item, session) look, in member then session order."""

    member: np.ndarray  # chunk-local member index
    session: np.ndarray
    item: np.ndarray
    depth: np.ndarray  # 1 = view ... 4 = purchase


@dataclass(frozen=True)
class ChunkEvents:
    member: np.ndarray  # global member index
    item: np.ndarray
    step: np.ndarray  # index into EVENTS
    timestamp: np.ndarray
    quantity: np.ndarray
    price: np.ndarray
    order: np.ndarray  # global order number, -1 for none
    orders: int


def _browse_funnel_thresholds(config: StoreConfig, catalog: Catalog) -> np.ndarray:
    """P(reach click), P(reach cart), P(reach purchase) for an ordinary browsing engagement.

    Two things ride on top of browsing and go down the whole funnel: re-buys of favourites and
    the bundle mates added to a purchase. So browsing converts less than :data:`FUNNEL_SHARES`
    says, by just enough that the mix of all three lands on the target shares.
    """
    view, *deeper = FUNNEL_SHARES
    target_reach = np.array(deeper) / view
    mates = _expected_mates_per_purchase(catalog, config.bundle_attach_rate)
    purchase_reach = target_reach[-1] / (1.0 + mates * (1.0 - target_reach[-1]))
    added = purchase_reach * mates  # full-funnel engagements added per base engagement
    reach = target_reach * (1.0 + added) - added
    reach[-1] = purchase_reach
    browse = (reach - config.repeat_share) / (1.0 - config.repeat_share)
    return np.clip(browse, 0.0, 1.0)


def _expected_mates_per_purchase(catalog: Catalog, attach_rate: float) -> float:
    """Bundle mates one purchase adds on average, judging purchases by catalog popularity."""
    bundle = catalog.bundle_of
    in_bundle = bundle >= 0
    bundle_size = (catalog.bundle_items >= 0).sum(axis=1)
    mates = bundle_size[bundle[in_bundle]] - 1
    return attach_rate * float((catalog.popularity[in_bundle] * mates).sum())


def simulate_chunk(
    config: StoreConfig,
    catalog: Catalog,
    members: Members,
    first_member: int,
    first_order: int,
    rng: np.random.Generator,
) -> ChunkEvents:
    """All events of members ``first_member ..`` (one chunk), with exactly their budgets."""
    budget = members.budget[first_member : first_member + config.members_per_chunk]
    taste = _member_tastes(rng, len(budget), catalog.category_share, config.taste_concentration)
    engagements = _truncate_to_budgets(
        _add_bundle_mates(_browse(config, catalog, taste, budget, rng), catalog, config, rng),
        budget,
    )
    return _timed_events(engagements, catalog, members, first_member, first_order, rng)


def _member_tastes(
    rng: np.random.Generator, n: int, category_share: np.ndarray, concentration: float
) -> np.ndarray:
    """Dirichlet tastes with a small alpha: most members care about a few departments."""
    alpha = concentration * len(category_share) * category_share
    draws = rng.standard_gamma(alpha, size=(n, len(category_share)))
    totals = np.maximum(draws.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return (1.0 - _TASTE_EXPLORATION) * draws / totals + _TASTE_EXPLORATION * category_share


def _browse(
    config: StoreConfig,
    catalog: Catalog,
    taste: np.ndarray,
    budget: np.ndarray,
    rng: np.random.Generator,
) -> _Engagements:
    """Each member's engagements, one per budgeted event (each engagement is >= 1 event, so this
    always covers the budget; the surplus is cut by :func:`_truncate_to_budgets`)."""
    member = np.repeat(np.arange(len(budget)), budget)
    first_of_member = np.r_[True, member[1:] != member[:-1]]
    new_session = first_of_member | (rng.random(len(member)) < 1.0 / config.session_length)
    session = np.cumsum(new_session) - 1
    session_member = member[new_session]
    categories = np.arange(len(catalog.specs))
    taste_sampler = row_sampler(taste, categories)
    session_category = taste_sampler.draw(session_member.astype(np.float64), rng)
    own_category = taste_sampler.draw(member.astype(np.float64), rng)
    focused = rng.random(len(member)) < _SESSION_FOCUS
    category = np.where(focused, session_category[session], own_category)
    item = catalog.item_sampler.draw(category.astype(np.float64), rng)
    thresholds = _browse_funnel_thresholds(config, catalog)
    depth = 1 + (rng.random(len(member))[:, None] < thresholds).sum(axis=1)
    rebuy = rng.random(len(member)) < config.repeat_share
    favourites = _favourite_items(rng, catalog, taste, config.favourites_per_member)
    item[rebuy] = _pick_favourites(rng, favourites, member[rebuy])
    depth[rebuy] = 4
    return _Engagements(member=member, session=session, item=item, depth=depth)


def _favourite_items(
    rng: np.random.Generator, catalog: Catalog, taste: np.ndarray, count: int
) -> np.ndarray:
    """A few consumable items per member (their usual coffee, detergent, dog food)."""
    consumable = np.array([spec.consumable for spec in catalog.specs])
    departments = np.flatnonzero(consumable)
    weight = taste[:, departments] + _TASTE_EXPLORATION * catalog.category_share[departments]
    rows = np.repeat(np.arange(len(taste), dtype=np.float64), count)
    category = row_sampler(weight, departments).draw(rows, rng)
    return catalog.item_sampler.draw(category.astype(np.float64), rng).reshape(len(taste), count)


def _pick_favourites(
    rng: np.random.Generator, favourites: np.ndarray, member: np.ndarray
) -> np.ndarray:
    """One favourite per re-buy; the first favourite is the member's usual pick."""
    count = favourites.shape[1]
    preference = zipf_weights(np.arange(count, dtype=np.float64), 1.0)
    pick = rng.choice(count, size=len(member), p=preference / preference.sum())
    return favourites[member, pick]


def _add_bundle_mates(
    engagements: _Engagements, catalog: Catalog, config: StoreConfig, rng: np.random.Generator
) -> _Engagements:
    """When a bundle item is bought, usually buy the rest of its bundle in the same session.

    The mates are inserted right after the purchase that triggered them, as full-funnel
    engagements of the same session, so they land in the same order.
    """
    item, depth = engagements.item, engagements.depth
    bundle = catalog.bundle_of[item]
    attach = (depth == 4) & (bundle >= 0) & (rng.random(len(item)) < config.bundle_attach_rate)
    trigger = np.flatnonzero(attach)
    mates = catalog.bundle_items[bundle[trigger]]
    is_mate = (mates >= 0) & (mates != item[trigger, None])
    parent = np.repeat(trigger, is_mate.sum(axis=1))
    at = parent + 1
    return _Engagements(
        member=np.insert(engagements.member, at, engagements.member[parent]),
        session=np.insert(engagements.session, at, engagements.session[parent]),
        item=np.insert(item, at, mates[is_mate]),
        depth=np.insert(depth, at, 4),
    )


def _truncate_to_budgets(engagements: _Engagements, budget: np.ndarray) -> _Engagements:
    """Keep each member's engagements until their events reach the budget exactly.

    The last kept engagement may lose its deepest steps; what remains is still a funnel prefix.
    """
    member, depth = engagements.member, engagements.depth
    events_before = np.cumsum(depth) - depth
    member_start = np.searchsorted(member, member, side="left")
    remaining = budget[member] - (events_before - events_before[member_start])
    keep = remaining > 0
    return _Engagements(
        member=member[keep],
        session=engagements.session[keep],
        item=engagements.item[keep],
        depth=np.minimum(depth, remaining)[keep],
    )


def _timed_events(
    engagements: _Engagements,
    catalog: Catalog,
    members: Members,
    first_member: int,
    first_order: int,
    rng: np.random.Generator,
) -> ChunkEvents:
    """Put sessions on the calendar, give purchases an order and a checkout, expand to rows."""
    member, item, depth = engagements.member, engagements.item, engagements.depth
    session_first = np.flatnonzero(np.r_[True, engagements.session[1:] != engagements.session[:-1]])
    session = np.repeat(np.arange(len(session_first)), np.diff(np.r_[session_first, len(member)]))
    session_member = first_member + member[session_first]
    start = _session_starts(rng, members, session_member)
    view_at = start[session] + _offsets_in_session(rng, session_first, len(member))
    click_gap = _seconds(rng, minimum=2, mean=20, size=len(member))
    cart_gap = _seconds(rng, minimum=2, mean=40, size=len(member))
    cart_at = view_at + click_gap + cart_gap
    last_cart = np.maximum.reduceat(cart_at, session_first)
    checkout = last_cart + _seconds(rng, minimum=5, mean=60, size=len(session_first))
    order, orders = _number_orders(depth == 4, session, session_first, first_order)
    quantity = _quantities(rng, catalog.consumable[item])
    price = _prices_paid(rng, catalog.price[item])

    row, step = _funnel_rows(depth)
    timestamp = view_at[row] + (step >= 1) * click_gap[row] + (step >= 2) * cart_gap[row]
    timestamp = np.minimum(np.where(step == 3, checkout[session[row]], timestamp), END_US - 1)
    chronological = np.lexsort((timestamp, member[row]))
    row, step, timestamp = row[chronological], step[chronological], timestamp[chronological]
    return ChunkEvents(
        member=first_member + member[row],
        item=item[row],
        step=step,
        timestamp=timestamp,
        quantity=np.where(step >= 2, quantity[row], 1).astype(np.int32),
        price=price[row],
        order=np.where(step >= 2, order[row], -1),
        orders=orders,
    )


def _number_orders(
    bought: np.ndarray, session: np.ndarray, session_first: np.ndarray, first_order: int
) -> tuple[np.ndarray, int]:
    """Purchases of one session form one order, numbered on from ``first_order``.

    Returns the order number of each engagement (-1 when not bought) and the number of orders.
    """
    session_bought = np.logical_or.reduceat(bought, session_first)
    order_of_session = np.where(session_bought, first_order + np.cumsum(session_bought) - 1, -1)
    return np.where(bought, order_of_session[session], -1), int(session_bought.sum())


def _funnel_rows(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per funnel step: (engagement index, step index into EVENTS) for every event."""
    row = np.repeat(np.arange(len(depth)), depth)
    step = np.arange(len(row)) - np.repeat(np.cumsum(depth) - depth, depth)
    return row, step


def _session_starts(
    rng: np.random.Generator, members: Members, session_member: np.ndarray
) -> np.ndarray:
    """Session start instants: a uniform day in the member's active window, a realistic hour,
    then sorted within each member so that session order is chronological."""
    low = members.joined[session_member]
    high = members.active_until[session_member]
    instant = uniform_times(rng, low, high, len(session_member))
    hour = rng.choice(24, size=len(session_member), p=_HOURLY_TRAFFIC / _HOURLY_TRAFFIC.sum())
    minute_us = (rng.random(len(session_member)) * US_PER_HOUR).astype(np.int64)
    start = instant - instant % US_PER_DAY + hour * US_PER_HOUR + minute_us
    start = np.clip(start, low, high)
    return start[np.lexsort((start, session_member))]


def _offsets_in_session(rng: np.random.Generator, session_first: np.ndarray, n: int) -> np.ndarray:
    """Time from session start to each engagement's view: a minute or so between items."""
    gaps = _seconds(rng, minimum=5, mean=75, size=n)
    gaps[session_first] = 0
    elapsed = np.cumsum(gaps)
    return elapsed - np.repeat(elapsed[session_first], np.diff(np.r_[session_first, n]))


def _seconds(rng: np.random.Generator, minimum: int, mean: int, size: int) -> np.ndarray:
    """Exponential waiting times in microseconds, at least ``minimum`` seconds."""
    return ((minimum + rng.exponential(mean - minimum, size)) * US_PER_SECOND).astype(np.int64)


def _quantities(rng: np.random.Generator, consumable: np.ndarray) -> np.ndarray:
    """Consumables are often bought several at a time; other items almost always one."""
    stock_up = np.minimum(rng.geometric(0.6, size=len(consumable)), 6)
    single = 1 + (rng.random(len(consumable)) < 0.05)
    return np.where(consumable, stock_up, single)


def _prices_paid(rng: np.random.Generator, list_price: np.ndarray) -> np.ndarray:
    """The list price, or a promotional price now and then."""
    promoted = rng.random(len(list_price)) < _PROMO_RATE
    factor = np.where(promoted, rng.choice(_PROMO_FACTORS, size=len(list_price)), 1.0)
    return np.round(list_price * factor, 2)
