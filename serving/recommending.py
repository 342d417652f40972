"""From a request to a served list: variant, live history, the bundle's answer, the record.

Every list goes through :meth:`RecommendationService._serve`, so that every response carries
a recommendation id, the variant, the model and its version and the fallback flag, and every
served list is queued for the impressions log (which the CTR report reads).

Answers are plain dicts shaped like ``serving.schemas.RecommendationResponse`` (and
``SimilarItemsResponse``), which the routes serialise straight to JSON: building and
re-validating response models cost a storefront request more than reading its list. The
schemas stay the documented contract, and the API tests check responses against them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from pydantic_core import to_json
from sqlalchemy.exc import SQLAlchemyError

from serving import metrics
from serving.errors import InvalidParameterError, NotFoundError
from serving.event_store import EventStore, StoredEvent
from serving.impressions import ImpressionBuffer
from serving.live import member_context
from serving.model_store import ModelStore
from serving.schemas import RecommendationOptions
from serving.snapshots import ModelSnapshot
from training.recommend import ItemList

__all__ = ["RecommendationService"]

logger = logging.getLogger(__name__)

#: Segment recorded for members who have none (unknown to the bundle, none declared).
_NO_SEGMENT = "unknown"
_LISTED_CATEGORIES = 20
#: The model name reported for lists the association rules answered.
_RULES_MODEL = "rules"
#: Anchors considered per bundle asked for (some have no rule, some repeat an item).
_ANCHORS_PER_BUNDLE = 3
#: Similar items fetched beyond what a bundle needs, since those of other categories drop out.
_SIMILAR_OVERFETCH = 50


def _recommendation_id() -> str:
    """32 hex digits, unique and in time order: nanoseconds since the epoch, then 64 random
    bits. In time order, the served-lists table's unique index grows at its end; random ids
    land anywhere in it, and those index inserts cost a sixth of a worker's CPU under load."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class _Pair:
    """A member bundle in the making: an anchor from the member's list and its complement."""

    score: float
    anchor: int
    anchor_score: float
    complement: int
    #: The complement's lift (1 for a stand-in: independence).
    lift: float
    #: The complement's fields in the response (source and measures).
    extra: dict[str, Any]


class RecommendationService:
    """Answers recommendation and similar-item requests."""

    def __init__(
        self, models: ModelStore, events: EventStore, impressions: ImpressionBuffer
    ) -> None:
        self._models = models
        self._events = events
        self._impressions = impressions
        # SQLite answers an indexed read in microseconds: cheaper on the event loop than a
        # thread hop. A networked database is read from a thread so that the loop never waits.
        self._read_inline = events.dialect == "sqlite"

    async def for_member(
        self,
        member_id: str,
        options: RecommendationOptions,
        *,
        segment: str | None = None,
        liked: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One member's list (GET /v1/members/{member_id}/recommendations)."""
        snapshot = self._models.for_member(member_id)
        [response] = await self._answer(snapshot, [member_id], options, segment, liked)
        return response

    async def for_members(
        self, member_ids: Sequence[str], options: RecommendationOptions
    ) -> list[dict[str, Any]]:
        """Lists for many members, each from their own variant, in the order asked."""
        by_variant: dict[str, list[int]] = defaultdict(list)
        for position, member_id in enumerate(member_ids):
            by_variant[self._models.assigner.assign(member_id)].append(position)
        responses: list[dict[str, Any] | None] = [None] * len(member_ids)
        for variant, positions in by_variant.items():
            members = [member_ids[position] for position in positions]
            answers = await self._answer(self._models.snapshot(variant), members, options)
            for position, answer in zip(positions, answers, strict=True):
                responses[position] = answer
        return [response for response in responses if response is not None]

    async def similar(self, item_id: str, n: int, model: str | None) -> dict[str, Any]:
        """Items similar to ``item_id`` (GET /v1/items/{item_id}/similar), from the primary
        variant."""
        snapshot = self._models.primary()
        recommender = snapshot.recommender
        index = snapshot.bundle.item_ids.get(item_id)
        if index is None:
            raise NotFoundError(f"unknown item {item_id!r}: the loaded bundle has no such item")
        self._check_model(snapshot, model)
        if model is not None and not recommender.supports_similarity(model):
            raise InvalidParameterError(f"model: {model!r} has no notion of item similarity")
        answer = recommender.similar_items(index, n, model=model)
        served = self._serve(snapshot, answer, member_id=None, item_id=item_id, segment=None)
        return {"item_id": item_id, **served}

    async def complements(self, item_ids: Sequence[str], n: int) -> dict[str, Any]:
        """What goes with these items (GET /v1/items/{item_id}/bundles, POST /v1/bundles),
        from the primary variant: the consequents of the bundle's rules whose antecedents are
        all in the cart, strongest first; completed by items similar to the cart's first item
        in its category (flagged) when the rules propose fewer than ``n``."""
        snapshot = self._models.primary()
        cart = []
        for item_id in item_ids:
            index = snapshot.bundle.item_ids.get(item_id)
            if index is None:
                raise NotFoundError(f"unknown item {item_id!r}: the loaded bundle has no such item")
            cart.append(index)
        allowed = snapshot.recommender.allowed_items()
        found = snapshot.rules.complements(cart, n, allowed) if snapshot.rules else []
        extras = [
            {"source": "rules", "support": c.support, "confidence": c.confidence,
             "lift": c.lift, "antecedents": list(c.antecedents)}
            for c in found
        ]  # fmt: skip
        names = snapshot.bundle.item_ids.external_ids
        answer = ItemList(
            item_ids=[str(names[c.item]) for c in found],
            scores=[c.lift for c in found],
            model=_RULES_MODEL,
            fallback=False,
            item_indices=[c.item for c in found],
        )
        if len(found) < n:
            answer, extras = self._with_similar(snapshot, cart, n, answer, extras)
        served = self._serve(snapshot, answer, member_id=None, item_id=item_ids[0], segment=None)
        for item, extra in zip(served["items"], extras, strict=True):
            item.update(extra)
        return {"cart": list(item_ids), **served}

    async def member_bundles(self, member_id: str, n: int) -> dict[str, Any]:
        """Bundles for a member (GET /v1/members/{member_id}/bundles): each of the member's
        top recommendations is an anchor, paired with its strongest complement by the rules
        (never an item the member bought, in the bundle or since), or with a stand-in of its
        category when no rule applies (scored as lift 1, independence). A bundle scores its
        complement's lift over the anchor's rank; the best ``n`` bundles, no item twice."""
        snapshot = self._models.for_member(member_id)
        recommender = snapshot.recommender
        index = snapshot.bundle.member_ids.get(member_id)
        events = await self._live_events([member_id], snapshot.built_at)
        context = member_context(snapshot, events, known=index is not None)
        depth = min(_ANCHORS_PER_BUNDLE * n, len(snapshot.bundle.item_ids))
        [anchors] = recommender.recommend([member_id], depth, contexts=[context])
        allowed = recommender.allowed_items().copy()
        allowed[recommender.purchased(-1 if index is None else index, context)] = False
        candidates = []
        for rank, (anchor, anchor_score) in enumerate(
            zip(anchors.item_indices, anchors.scores, strict=True), start=1
        ):
            found = snapshot.rules.complements([anchor], 1, allowed) if snapshot.rules else []
            if found:
                best = found[0]
                extra = {"source": "rules", "support": best.support, "confidence": best.confidence,
                         "lift": best.lift, "antecedents": list(best.antecedents)}  # fmt: skip
                candidates.append(
                    _Pair(best.lift / rank, anchor, anchor_score, best.item, best.lift, extra)
                )
                continue
            # No rule: a stand-in of the anchor's category, if the category has one left.
            empty = ItemList([], [], _RULES_MODEL, False)
            stand_in, extras = self._with_similar(snapshot, [anchor], 1, empty, [])
            if stand_in.item_indices:
                complement = stand_in.item_indices[0]
                candidates.append(
                    _Pair(1.0 / rank, anchor, anchor_score, complement, 1.0, extras[0])
                )
        pairs: list[_Pair] = []
        used: set[int] = set()
        for pair in sorted(candidates, key=lambda candidate: -candidate.score):
            if len(pairs) < n and pair.anchor not in used and pair.complement not in used:
                used.update((pair.anchor, pair.complement))
                pairs.append(pair)
        names = snapshot.bundle.item_ids.external_ids
        indices = [item for pair in pairs for item in (pair.anchor, pair.complement)]
        listed = ItemList(
            item_ids=[str(names[item]) for item in indices],
            scores=[value for pair in pairs for value in (pair.anchor_score, pair.lift)],
            model=anchors.model,
            fallback=anchors.fallback or any(p.extra["source"] == "similar" for p in pairs),
            item_indices=indices,
        )
        served = self._serve(
            snapshot, listed, member_id=member_id, item_id=None,
            segment=snapshot.segment_of(index) if index is not None else None,
        )  # fmt: skip
        items = served.pop("items")
        anchor_extra = {"source": "recommended", "support": None, "confidence": None,
                        "lift": None, "antecedents": []}  # fmt: skip
        grouped = []
        for position, pair in enumerate(pairs):
            anchor_item, complement_item = items[2 * position], items[2 * position + 1]
            shown = [{**anchor_item, **anchor_extra}, {**complement_item, **pair.extra}]
            prices = [snapshot.prices[pair.anchor], snapshot.prices[pair.complement]]
            known = all(price is not None and math.isfinite(price) for price in prices)
            total = float(sum(prices)) if known else None  # type: ignore[arg-type]
            grouped.append({"items": shown, "score": pair.score, "total_price": total})
        return {"member_id": member_id, **served, "bundles": grouped}

    @staticmethod
    def _with_similar(
        snapshot: ModelSnapshot,
        cart: Sequence[int],
        n: int,
        answer: ItemList,
        extras: list[dict[str, Any]],
    ) -> tuple[ItemList, list[dict[str, Any]]]:
        """``answer`` completed to ``n`` from the cart's first item's category (any category
        when it has none): items similar to it first, then the category's best sellers;
        flagged ``source: similar``."""
        anchor = cart[0]
        category = snapshot.categories[anchor]
        taken = {*cart, *answer.item_indices}
        similar = snapshot.recommender.similar_items(anchor, n + len(taken) + _SIMILAR_OVERFETCH)
        scores = dict(zip(similar.item_indices, similar.scores, strict=True))
        allowed = snapshot.recommender.allowed_items()
        added: list[int] = []
        for index in chain(similar.item_indices, map(int, snapshot.best_sellers)):
            if len(added) == n - len(answer.item_ids):
                break
            if index in taken or not allowed[index]:
                continue
            if category is not None and snapshot.categories[index] != category:
                continue
            taken.add(index)
            added.append(index)
        names = snapshot.bundle.item_ids.external_ids
        floor = min([*answer.scores, *scores.values(), 0.0])
        completed = ItemList(
            item_ids=[*answer.item_ids, *(str(names[index]) for index in added)],
            scores=[*answer.scores, *(scores.get(index, floor - 1.0) for index in added)],
            model=answer.model if answer.item_ids else similar.model,
            fallback=bool(added) or answer.fallback,
            item_indices=[*answer.item_indices, *added],
        )
        filler = {"source": "similar", "support": None, "confidence": None, "lift": None,
                  "antecedents": []}  # fmt: skip
        return completed, [*extras, *(dict(filler) for _ in added)]

    async def _answer(
        self,
        snapshot: ModelSnapshot,
        member_ids: Sequence[str],
        options: RecommendationOptions,
        segment: str | None = None,
        liked: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        self._check_model(snapshot, options.model)
        self._check_category(snapshot, options.category)
        events = await self._live_events(member_ids, snapshot.built_at)
        by_member: dict[str, list[StoredEvent]] = defaultdict(list)
        for stored in events:
            by_member[stored.member_id].append(stored)
        indices = [snapshot.bundle.member_ids.get(member_id) for member_id in member_ids]
        contexts = [
            member_context(
                snapshot, by_member.get(member_id, ()), known=index is not None,
                segment=segment, liked=liked,
            )
            for member_id, index in zip(member_ids, indices, strict=True)
        ]  # fmt: skip
        answers = snapshot.recommender.recommend(
            member_ids,
            options.n,
            model=options.model,
            category=options.category,
            exclude_purchased=options.exclude_purchased,
            contexts=contexts,
            max_per_category=options.max_per_category,
        )
        return [
            {
                "member_id": answer.member_id,
                **self._serve(
                    snapshot, answer, member_id=answer.member_id, item_id=None,
                    segment=snapshot.segment_of(index) if index is not None else segment,
                ),
            }
            for answer, index in zip(answers, indices, strict=True)
        ]  # fmt: skip

    async def _live_events(self, member_ids: Sequence[str], since: float) -> list[StoredEvent]:
        """Events since the bundle; none when the store fails, so that a storefront still
        gets an answer (from the bundle alone) while the store is down."""
        try:
            if self._read_inline:
                return self._events.member_events(member_ids, since)
            return await asyncio.to_thread(self._events.member_events, member_ids, since)
        except SQLAlchemyError as error:
            logger.warning("answering without live history: the event store failed (%s)", error)
            return []

    @staticmethod
    def _check_model(snapshot: ModelSnapshot, model: str | None) -> None:
        if model is not None and model not in snapshot.bundle.models:
            available = ", ".join(snapshot.bundle.models)
            raise InvalidParameterError(f"model: unknown model {model!r}; available: {available}")

    @staticmethod
    def _check_category(snapshot: ModelSnapshot, category: str | None) -> None:
        if category is None or category in snapshot.category_names:
            return
        known = sorted(snapshot.category_names)
        listed = ", ".join(known[:_LISTED_CATEGORIES]) + (
            " ..." if len(known) > _LISTED_CATEGORIES else ""
        )
        raise InvalidParameterError(
            f"category: unknown category {category!r}; known: {listed or 'none (no catalog)'}"
        )

    def _serve(
        self,
        snapshot: ModelSnapshot,
        answer: ItemList,
        *,
        member_id: str | None,
        item_id: str | None,
        segment: str | None,
    ) -> dict[str, Any]:
        """The fields every served list carries; queues its impressions record."""
        recommendation_id = _recommendation_id()
        titles, categories = snapshot.titles, snapshot.categories
        items = [
            {"item_id": item, "score": score, "title": titles[index],
             "category": categories[index]}
            for item, score, index in zip(
                answer.item_ids, answer.scores, answer.item_indices, strict=True
            )
        ]  # fmt: skip
        self._impressions.add(
            {
                "recommendation_id": recommendation_id,
                "served_at": time.time(),
                "member_id": member_id,
                "item_id": item_id,
                "variant": snapshot.variant,
                "model": answer.model,
                "model_version": snapshot.version,
                "segment": (segment or _NO_SEGMENT) if item_id is None else None,
                "fallback": answer.fallback,
                "n_items": len(items),
                "item_ids": to_json(answer.item_ids).decode(),
            }
        )
        metrics.served(snapshot.variant, answer.model, fallback=answer.fallback)
        return {
            "recommendation_id": recommendation_id,
            "variant": snapshot.variant,
            "model": answer.model,
            "model_version": snapshot.version,
            "fallback": answer.fallback,
            "items": items,
        }
