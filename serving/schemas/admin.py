"""Bodies of the operators' routes: the loaded models, a reload, health and readiness."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "Health",
    "ModelsResponse",
    "Readiness",
    "ReloadResponse",
    "VariantInfo",
    "VariantReload",
]


class VariantInfo(BaseModel):
    variant: str
    weight: float = Field(description="Share of members, normalised.")
    source: str
    loaded: bool
    version: str | None = None
    chosen: str | None = Field(default=None, description="The model that answers by default.")
    models: list[str] = Field(default_factory=list)
    created_at: str | None = None
    loaded_at: datetime | None = None
    n_members: int | None = None
    n_items: int | None = None


class ModelsResponse(BaseModel):
    variants: list[VariantInfo]


class VariantReload(BaseModel):
    variant: str
    version: str
    previous_version: str | None
    swapped: bool = Field(description="False when the source still held the loaded version.")


class ReloadResponse(BaseModel):
    variants: list[VariantReload]


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str = "ready"
    versions: dict[str, str]
