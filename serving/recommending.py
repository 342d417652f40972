"""From a request to a served list: variant, live history, the model artifact's answer, the
record.

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
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy.exc import SQLAlchemyError

from serving import metrics
from serving.buy_again import buy_again_answer
from serving.erasure import ErasedMembers
from serving.errors import InvalidParameterError, NotFoundError
from serving.event_store import EventStore, StoredEvent
from serving.impressions import ImpressionBuffer
from serving.live import member_context
from serving.model_store import ModelStore
from serving.schemas import RecommendationOptions
from serving.snapshots import ModelSnapshot
from training.member_bundles import MemberBundles
from training.recommend import ItemList

__all__ = ["RecommendationService"]

logger = logging.getLogger(__name__)

#: Segment recorded for members who have none (unknown to the model artifact, none declared).
_NO_SEGMENT = "unknown"
_LISTED_CATEGORIES = 20
#: The model name reported for lists the association rules answered.
_RULES_MODEL = "rules"
#: The id an erased member is answered as: one no artifact or store holds (a control
#: character is never a valid id), so that they get what a member never seen would get.
_ERASED = "\x00erased"


def _recommendation_id() -> str:
    """32 hex digits, unique and in time order: nanoseconds since the epoch, then 64 random
    bits. In time order, the served-lists table's unique index grows at its end; random ids
    land anywhere in it, and those index inserts cost a sixth of a worker's CPU under load."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


#: Fields of a bundle item that a recommendation put there (no rule measures).
_ANCHOR_FIELDS: dict[str, Any] = {
    "source": "recommended", "support": None, "confidence": None, "lift": None, "antecedents": [],
}  # fmt: skip
#: Fields of a bundle item that stands in for a missing rule (same category, similar).
_STAND_IN_FIELDS: dict[str, Any] = {**_ANCHOR_FIELDS, "source": "similar"}


def _rule_fields(
    antecedents: Sequence[str], support: float, confidence: float, lift: float
) -> dict[str, Any]:
    """Fields of a bundle item that a rule proposed: the rule's antecedents and measures."""
    return {"source": "rules", "support": support, "confidence": confidence, "lift": lift,
            "antecedents": list(antecedents)}  # fmt: skip


class RecommendationService:
    """Answers recommendation and similar-item requests."""

    def __init__(
        self,
        models: ModelStore,
        events: EventStore,
        impressions: ImpressionBuffer,
        erased: ErasedMembers,
    ) -> None:
        self._models = models
        self._events = events
        self._impressions = impressions
        self._erased = erased
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
        index = snapshot.artifact.item_ids.get(item_id)
        if index is None:
            raise NotFoundError(
                f"unknown item {item_id!r}: the loaded model artifact has no such item"
            )
        self._check_model(snapshot, model)
        if model is not None and not recommender.supports_similarity(model):
            raise InvalidParameterError(f"model: {model!r} has no notion of item similarity")
        answer = recommender.similar_items(index, n, model=model)
        served = self._serve(snapshot, answer, member_id=None, item_id=item_id, segment=None)
        return {"item_id": item_id, **served}

    async def complements(self, item_ids: Sequence[str], n: int) -> dict[str, Any]:
        """What goes with these items (GET /v1/items/{item_id}/bundles, POST /v1/bundles),
        from the primary variant: the consequents of the model artifact's rules whose antecedents
        are all in the cart, strongest first; completed by items similar to the cart's first
        item in its category (flagged) when the rules propose fewer than ``n``."""
        snapshot = self._models.primary()
        cart = []
        for item_id in item_ids:
            index = snapshot.artifact.item_ids.get(item_id)
            if index is None:
                raise NotFoundError(
                    f"unknown item {item_id!r}: the loaded model artifact has no such item"
                )
            cart.append(index)
        allowed = snapshot.recommender.allowed_items()
        found = snapshot.rules.complements(cart, n, allowed) if snapshot.rules else []
        extras = [_rule_fields(c.antecedents, c.support, c.confidence, c.lift) for c in found]
        names = snapshot.artifact.item_ids.external_ids
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
        """Bundles for a member (GET /v1/members/{member_id}/bundles), composed by
        :class:`training.member_bundles.BundleComposer` from the member's recommendations with
        their events since the model artifact: each bundle an anchor, its complement and a third
        item when a rule proposes one for the pair, with measures, total price and score, best
        first."""
        snapshot = self._models.for_member(member_id)
        seen = self._seen_as(member_id)
        index = snapshot.artifact.member_ids.get(seen)
        events = await self._live_events([seen], snapshot.live_since)
        context = member_context(snapshot, events, member_id=seen, known=index is not None)
        found = snapshot.composer.for_members([seen], n, contexts=[context])
        count = int(found.counts()[0])
        # Each bundle's items in order (anchor, complement, third when there is one), with
        # the score each is listed with: the anchor's recommendation score, else its lift.
        listed_items: list[tuple[int, int, float]] = []  # (bundle, item, score)
        for position in range(count):
            listed_items.append(
                (position, int(found.anchors[0, position]), float(found.anchor_scores[0, position]))
            )
            listed_items.append(
                (position, int(found.complements[0, position]), float(found.lift[0, position]))
            )
            if found.thirds[0, position] >= 0:
                third_lift = float(found.third_measures["lift"][0, position])
                listed_items.append((position, int(found.thirds[0, position]), third_lift))
        indices = [item for _, item, _ in listed_items]
        listed = ItemList(
            item_ids=snapshot.artifact.item_ids.external_ids[indices].tolist(),
            scores=[score for _, _, score in listed_items],
            model=found.models[0],
            fallback=bool(found.fallback[0]),
            item_indices=indices,
        )
        served = self._serve(
            snapshot, listed, member_id=self._logged_as(seen), item_id=None,
            segment=snapshot.segment_of_member(seen, index),
        )  # fmt: skip
        bundles: list[dict[str, Any]] = []
        for (position, _, _), item in zip(listed_items, served.pop("items"), strict=True):
            if position == len(bundles):  # the anchor opens a bundle
                total_price = float(found.total_price[0, position])
                bundles.append({
                    "items": [{**item, **_ANCHOR_FIELDS}],
                    "score": float(found.scores[0, position]),
                    "total_price": total_price if math.isfinite(total_price) else None,
                })  # fmt: skip
                continue
            shown = bundles[position]["items"]
            shown.append({**item, **self._bundle_item_fields(found, position, shown)})
        return {"member_id": member_id, **served, "bundles": bundles}

    async def buy_again(self, member_id: str, n: int, as_of: datetime | None) -> dict[str, Any]:
        """A member's past items by how due they are (GET /v1/members/{member_id}/buy-again),
        their live purchases folded in (:mod:`serving.buy_again`), served like every list."""
        snapshot = self._models.for_member(member_id)
        seen = self._seen_as(member_id)
        events = await self._live_events([seen], snapshot.live_since)
        answer = buy_again_answer(
            snapshot, member_id, events, n=n, as_of=as_of, erased=seen == _ERASED
        )
        served = self._serve(
            snapshot, answer.listed, member_id=self._logged_as(seen), item_id=None,
            segment=snapshot.segment_of_member(seen, answer.member_index),
        )  # fmt: skip
        for item, fields in zip(served["items"], answer.item_fields, strict=True):
            item.update(fields)
        return {"member_id": member_id, **answer.fields, **served}

    @staticmethod
    def _bundle_item_fields(
        found: MemberBundles, position: int, shown: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Source and measures of a member bundle's complement (``shown`` holds the anchor)
        or third item (``shown`` holds the anchor and the complement)."""
        if len(shown) == 2:
            measures = found.third_measures
            return _rule_fields(
                sorted(item["item_id"] for item in shown),
                *(float(measures[name][0, position]) for name in ("support", "confidence", "lift")),
            )
        if not found.from_rules[0, position]:
            return _STAND_IN_FIELDS
        return _rule_fields(
            [shown[0]["item_id"]],
            *(float(m[0, position]) for m in (found.support, found.confidence, found.lift)),
        )

    @staticmethod
    def _with_similar(
        snapshot: ModelSnapshot,
        cart: Sequence[int],
        n: int,
        answer: ItemList,
        extras: list[dict[str, Any]],
    ) -> tuple[ItemList, list[dict[str, Any]]]:
        """``answer`` completed to ``n`` with stand-ins of the cart's first item (items
        similar to it in its category, then the category's best sellers), flagged
        ``source: similar``."""
        taken = {*cart, *answer.item_indices}
        items, scores = snapshot.composer.stand_ins([cart[0]], n - len(answer.item_ids), [taken])
        kept = items[0] >= 0
        added, added_scores = items[0][kept].tolist(), scores[0][kept].tolist()
        names = snapshot.artifact.item_ids.external_ids
        completed = ItemList(
            item_ids=[*answer.item_ids, *(str(names[index]) for index in added)],
            scores=[*answer.scores, *added_scores],
            model=answer.model,
            fallback=bool(added) or answer.fallback,
            item_indices=[*answer.item_indices, *added],
        )
        return completed, [*extras, *(dict(_STAND_IN_FIELDS) for _ in added)]

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
        seen = [self._seen_as(member_id) for member_id in member_ids]
        events = await self._live_events(seen, snapshot.live_since)
        by_member: dict[str, list[StoredEvent]] = defaultdict(list)
        for stored in events:
            by_member[stored.member_id].append(stored)
        indices = [snapshot.artifact.member_ids.get(member_id) for member_id in seen]
        contexts = [
            member_context(
                snapshot, by_member.get(member_id, ()), member_id=member_id,
                known=index is not None, segment=segment, liked=liked,
            )
            for member_id, index in zip(seen, indices, strict=True)
        ]  # fmt: skip
        answers = snapshot.recommender.recommend(
            seen,
            options.n,
            model=options.model,
            category=options.category,
            exclude_purchased=options.exclude_purchased,
            contexts=contexts,
            max_per_category=options.max_per_category,
        )
        return [
            {
                "member_id": asked,
                **self._serve(
                    snapshot, answer, member_id=self._logged_as(answer.member_id), item_id=None,
                    segment=(
                        segment if index is None and segment
                        else snapshot.segment_of_member(answer.member_id, index)
                    ),
                ),
            }
            for asked, answer, index in zip(member_ids, answers, indices, strict=True)
        ]  # fmt: skip

    def _seen_as(self, member_id: str) -> str:
        """The id a member is answered as: their own, or for an erased member one that nothing
        holds, so that no answer draws on what the artifact or the store knew of them."""
        return _ERASED if member_id in self._erased else member_id

    @staticmethod
    def _logged_as(seen: str) -> str | None:
        """The member id the impressions log records: none for an erased member."""
        return None if seen == _ERASED else seen

    async def _live_events(self, member_ids: Sequence[str], since: float) -> list[StoredEvent]:
        """Events that occurred after ``since`` (the model artifact's data end); none when the
        store fails, so that a storefront still gets an answer (from the artifact alone) while the
        store is down."""
        member_ids = [member_id for member_id in member_ids if member_id != _ERASED]
        if not member_ids:
            return []
        try:
            if self._read_inline:
                return self._events.member_events(member_ids, since)
            return await asyncio.to_thread(self._events.member_events, member_ids, since)
        except SQLAlchemyError as error:
            logger.warning("answering without live history: the event store failed (%s)", error)
            return []

    @staticmethod
    def _check_model(snapshot: ModelSnapshot, model: str | None) -> None:
        if model is not None and model not in snapshot.artifact.models:
            available = ", ".join(snapshot.artifact.models)
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
