"""The dashboard's read routes: the overview's figures, member search, a member's history, and
the registry's versions (a member's profile is :mod:`serving.routes.profiles`; the pages
themselves are static files, :mod:`serving.dashboard`).

Every figure is read from the model artifact (written at training time by
``training.member_kpis``) or the event store; nothing here computes a business figure anew.
Like every read route these need a ``read`` key when RECSYS_REQUIRE_READ_KEY is set.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import polars as pl
from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from features import columns as col
from features.errors import ConfigError
from serving.deps import ErasedDep, EventStoreDep, ModelStoreDep, PseudonymsDep, ReadAccess
from serving.errors import InvalidParameterError, NotFoundError
from serving.event_store import EVENTS, EventStore
from serving.routes._responses import errors
from serving.schemas import ExternalId
from serving.schemas.dashboard import (
    HistoryItem,
    LiveEvent,
    MemberHistory,
    MemberMatch,
    MemberSearch,
    Overview,
    RegistryResponse,
    RegistryVersion,
)
from serving.snapshots import ModelSnapshot
from training.member_kpis import KPIS_FILE
from training.tracking.versions import registered_versions

__all__ = ["router"]

router = APIRouter(
    prefix="/v1",
    tags=["dashboard"],
    dependencies=[ReadAccess],
    responses=errors(401, 403, 422, 503),
)

#: The registered model when no variant names one (``serving.settings.DEFAULT_MODEL_URI``).
_DEFAULT_REGISTERED_MODEL = "member-recsys"
_REGISTRY_URI = re.compile(r"models:/(?P<name>[^/@]+)")
_MEMBER_PATH = Path(description="The member's id.", examples=["M001"])


def _snapshot(models: ModelStoreDep, variant: str | None) -> ModelSnapshot:
    if variant is not None and variant not in models.configs:
        raise InvalidParameterError(
            f"variant: unknown variant {variant!r}; known: {list(models.configs)}"
        )
    return models.snapshot(variant) if variant is not None else models.primary()


@router.get(
    "/dashboard/overview", summary="Key figures of the member program", responses=errors(404)
)
async def overview(
    models: ModelStoreDep,
    variant: Annotated[str | None, Query(description="Default: the largest variant.")] = None,
) -> Overview:
    """Active members, repurchase rate and average order value over the trailing window, the
    revenue and active members by month, and members by segment and tier, as of the data's
    end (the artifact's ``kpis.json``; ``definitions`` says what each figure means)."""
    snapshot = _snapshot(models, variant)
    if snapshot.kpis_json is None:
        raise NotFoundError(
            f"the model artifact of variant {snapshot.variant!r} has no {KPIS_FILE}: it was "
            "trained before the dashboard's figures existed; retrain it (recsys train)"
        )
    figures = json.loads(snapshot.kpis_json)
    return Overview(variant=snapshot.variant, version=snapshot.version, **figures)


@router.get("/dashboard/members", summary="Find members by id")
async def search_members(
    models: ModelStoreDep,
    erased: ErasedDep,
    pseudonyms: PseudonymsDep,
    q: Annotated[str, Query(max_length=128, description="Part of a member id (any case).")] = "",
    limit: Annotated[int, Query(ge=1, le=100, description="Most matches returned.")] = 20,
) -> MemberSearch:
    """Members whose id contains ``q`` (all members for an empty ``q``), in id order, with
    their segment and declared tier: the member page's search box. Erased members are not
    found. With pseudonymised ids (RECSYS_MEMBER_ID_KEY), a member's own id finds them too."""
    snapshot = models.primary()
    members = _member_table(snapshot)
    if len(erased):
        members = members.filter(~pl.col(col.MEMBER_ID).is_in(erased.ids()))
    if q:
        found = pl.col(col.MEMBER_ID).str.to_lowercase().str.contains(q.lower(), literal=True)
        if pseudonyms is not None:
            found |= pl.col(col.MEMBER_ID) == pseudonyms.of(q)
        members = members.filter(found)
    shown = members.sort(col.MEMBER_ID).head(limit)
    return MemberSearch(
        query=q,
        members=[MemberMatch(**row) for row in shown.iter_rows(named=True)],
        total=members.height,
    )


def _member_table(snapshot: ModelSnapshot) -> pl.DataFrame:
    """member_id, segment and tier of every member the artifact knows of."""
    if snapshot.profiles is not None:
        return snapshot.profiles.select(col.MEMBER_ID, "segment", col.TIER)
    ids = snapshot.artifact.member_ids.external_ids
    return pl.DataFrame({
        col.MEMBER_ID: pl.Series(ids, dtype=pl.Utf8),
        "segment": [snapshot.segment_of(index) for index in range(len(ids))],
        col.TIER: pl.Series([None] * len(ids), dtype=pl.Utf8),
    })  # fmt: skip


@router.get("/members/{member_id}/history", summary="A member's recent history")
async def member_history(
    member_id: Annotated[ExternalId, _MEMBER_PATH],
    models: ModelStoreDep,
    store: EventStoreDep,
    erased: ErasedDep,
    n: Annotated[int, Query(ge=1, le=200, description="Most items and events of each.")] = 20,
) -> MemberHistory:
    """The items the artifact learned the member interacted with (strongest first, purchases
    flagged) and the events posted since its data ended (newest first). An unknown member has
    an empty history, not a 404: events may arrive before the next training run. So has an
    erased member: what the artifact learnt of them is not shown."""
    snapshot = models.for_member(member_id)
    index = None if member_id in erased else snapshot.artifact.member_ids.get(member_id)
    rows = await asyncio.to_thread(_live_rows, store, member_id, snapshot.live_since, n)
    return MemberHistory(
        member_id=member_id,
        trained=_trained_items(snapshot, index, n) if index is not None else [],
        live=[_live_event(snapshot, *row) for row in rows],
        live_since=datetime.fromtimestamp(snapshot.live_since, UTC),
    )


def _live_event(snapshot: ModelSnapshot, item_id: str, event: str, at: float) -> LiveEvent:
    item = snapshot.artifact.item_ids.get(item_id)
    occurred_at = datetime.fromtimestamp(at, UTC)
    return LiveEvent(
        item_id=item_id, event=event, occurred_at=occurred_at, **_display(snapshot, item)
    )


def _live_rows(store: EventStore, member_id: str, since: float, n: int) -> list[tuple]:
    query = (
        select(EVENTS.c.item_id, EVENTS.c.event, EVENTS.c.occurred_at)
        .where(EVENTS.c.member_id == member_id, EVENTS.c.occurred_at > since)
        .order_by(EVENTS.c.occurred_at.desc(), EVENTS.c.id.desc())
        .limit(n)
    )
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def _trained_items(snapshot: ModelSnapshot, index: int, n: int) -> list[HistoryItem]:
    histories, purchases = snapshot.artifact.histories, snapshot.artifact.purchases
    start, end = histories.indptr[index], histories.indptr[index + 1]
    items, weights = histories.indices[start:end], histories.data[start:end]
    bought = set(purchases.indices[purchases.indptr[index] : purchases.indptr[index + 1]].tolist())
    order = np.argsort(-weights, kind="stable")[:n]
    names = snapshot.artifact.item_ids.external_ids
    return [
        HistoryItem(
            item_id=str(names[items[position]]), weight=float(weights[position]),
            purchased=int(items[position]) in bought,
            **_display(snapshot, int(items[position])),
        )
        for position in order
    ]  # fmt: skip


def _display(snapshot: ModelSnapshot, item: int | None) -> dict[str, str | None]:
    if item is None:
        return {"title": None, "category": None}
    return {"title": snapshot.titles[item], "category": snapshot.categories[item]}


@router.get("/dashboard/registry", summary="Registered versions and the champion")
async def registry(request: Request, models: ModelStoreDep) -> RegistryResponse:
    """Every version of the registered model the service follows, newest first, with its
    aliases (``champion`` marked), chosen model, primary metric and promotion decision; with no
    tracking URI configured there is no registry to read, and ``message`` says so."""
    uri = request.app.state.settings.resolved_tracking_uri()
    if uri is None:
        return RegistryResponse(
            configured=False, registered_model=None, versions=[],
            message="no MLflow tracking URI is configured (RECSYS_TRACKING_URI or "
            "MLFLOW_TRACKING_URI), so there is no registry to list",
        )  # fmt: skip
    name = _registered_model(models.configs.values())
    try:
        found = await asyncio.to_thread(registered_versions, name, uri)
    except ConfigError as error:
        return RegistryResponse(configured=True, registered_model=name, versions=[],
                                message=str(error))  # fmt: skip
    return RegistryResponse(
        configured=True,
        registered_model=name,
        versions=[
            RegistryVersion(
                **{**asdict(version), "aliases": list(version.aliases)}, champion=version.champion
            )
            for version in found
        ],
        message=None if found else f"registered model {name!r} has no versions at {uri}",
    )


def _registered_model(configs: Any) -> str:
    """The registered model the first registry-backed variant follows, else the default."""
    for config in configs:
        match = _REGISTRY_URI.match(config.source)
        if match is not None:
            return match.group("name")
    return _DEFAULT_REGISTERED_MODEL
