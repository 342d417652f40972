"""Body of GET /v1/reports/ctr: served impressions, clicks and conversions by group."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CtrGroup", "CtrReport", "GroupBy", "Rate"]


class Rate(BaseModel):
    """A proportion with its 95% Wilson score interval; null without any trial."""

    value: float | None
    low: float | None
    high: float | None


class CtrGroup(BaseModel):
    key: str
    day: str | None = Field(
        default=None, description="UTC day the lists were served (YYYY-MM-DD), with per_day."
    )
    impressions: int = Field(description="Items served in lists of this group.")
    clicks: int = Field(description="Distinct (list, item) pairs clicked.")
    ctr: Rate
    conversions: int = Field(description="Distinct (list, item) pairs purchased.")
    conversion_rate: Rate = Field(description="Conversions per impression.")


class GroupBy(StrEnum):
    MODEL = "model"
    VARIANT = "variant"
    SEGMENT = "segment"
    DAY = "day"


class CtrReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: datetime | None = Field(alias="from")
    end: datetime | None = Field(alias="to")
    group_by: GroupBy
    per_day: bool = Field(default=False, description="Groups are split by UTC day of serving.")
    confidence: float
    groups: list[CtrGroup]
    total: CtrGroup
