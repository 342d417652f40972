"""``DELETE /v1/members/{member_id}``: erase a member on request (:mod:`serving.erasure`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from serving.audit import AuditEntry
from serving.deps import AdminAccess, ErasedDep, EventStoreDep, audit_entry
from serving.erasure import forget_members
from serving.routes._responses import errors
from serving.schemas import ExternalId, MemberErased

__all__ = ["router"]

router = APIRouter(
    prefix="/v1", tags=["admin"], dependencies=[AdminAccess], responses=errors(401, 403, 422)
)

#: What the answer says about the loaded model artifact.
_UNTIL_RETRAINED = (
    "answered as a member never seen until the next training, which drops their rows from its "
    "input; exports leave them out, and events posted for them are not stored"
)


@router.delete("/members/{member_id}", summary="Erase a member")
async def erase_member(
    member_id: Annotated[ExternalId, Path(description="The member's id.", examples=["M0001"])],
    store: EventStoreDep,
    erased: ErasedDep,
    audit: Annotated[AuditEntry, audit_entry("erase")],
) -> MemberErased:
    """Delete the member's events and campaign sends, unlink the lists served to them, and
    record the erasure: every worker and replica on this event store answers them as a member
    never seen from now on (the others within ``RECSYS_RELOAD_FOLLOW_SECONDS``), exports
    leave them out, and the next ``recsys train`` drops their rows. Erasing a member twice
    deletes what arrived since. Recorded in the audit log (by member id)."""
    audit.target = member_id
    [done] = await asyncio.to_thread(forget_members, store, [member_id], audit.actor)
    erased.add([member_id])
    audit.detail.update(
        events_deleted=done.events_deleted, sends_deleted=done.sends_deleted,
        served_unlinked=done.served_unlinked, first_erasure=done.first,
    )  # fmt: skip
    return MemberErased(
        member_id=member_id, events_deleted=done.events_deleted,
        sends_deleted=done.sends_deleted, served_unlinked=done.served_unlinked,
        first_erasure=done.first, note=_UNTIL_RETRAINED,
    )  # fmt: skip
