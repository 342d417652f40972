"""Bodies of the member-data routes: an erasure and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditEntryOut", "AuditLogResponse", "MemberErased"]


class MemberErased(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": "M0001",
                    "events_deleted": 12,
                    "sends_deleted": 2,
                    "served_unlinked": 40,
                    "first_erasure": True,
                    "note": "answered as a member never seen until the next training, which "
                    "drops their rows from its input",
                }
            ]
        }
    )

    member_id: str
    events_deleted: int = Field(description="The member's events deleted from the store.")
    sends_deleted: int = Field(description="Campaign sends to the member deleted from the ledger.")
    served_unlinked: int = Field(
        description="Lists served to the member, kept in the CTR counts with no member on them."
    )
    first_erasure: bool = Field(
        description="False when the member was erased before (what arrived since is deleted)."
    )
    note: str


class AuditEntryOut(BaseModel):
    id: int = Field(description="The row's number: pass the last one as `before` for older rows.")
    at: datetime
    actor: str = Field(
        description="`key:<fingerprint>` for an API key, `cli:<user>` for a command."
    )
    action: str
    target: str | None
    outcome: Literal["ok", "refused", "failed"]
    detail: dict[str, Any]


class AuditLogResponse(BaseModel):
    entries: list[AuditEntryOut] = Field(description="Newest first.")
    next_before: int | None = Field(
        description="Pass as `before` for the next page; null when this page is the last."
    )
