"""What is loaded: every variant, its share, source, version and models."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ModelStoreDep, ReadAccess
from serving.routes._responses import errors
from serving.schemas import ModelsResponse, VariantInfo

__all__ = ["router"]

router = APIRouter(
    prefix="/v1", tags=["models"], dependencies=[ReadAccess], responses=errors(401, 403)
)


@router.get("/models", summary="Loaded models by variant")
async def list_models(models: ModelStoreDep) -> ModelsResponse:
    """Each A/B variant with its share of members and the model artifact it serves (if loaded)."""
    variants = []
    for name, config in models.configs.items():
        snapshot = models.snapshots.get(name)
        info = VariantInfo(
            variant=name,
            weight=models.assigner.shares[name],
            source=config.source,
            loaded=snapshot is not None,
        )
        if snapshot is not None:
            manifest = snapshot.artifact.manifest
            info = info.model_copy(
                update={
                    "version": snapshot.version,
                    "chosen": snapshot.artifact.chosen,
                    "models": list(snapshot.artifact.models),
                    "created_at": str(manifest["created_at"]),
                    "loaded_at": snapshot.loaded_at,
                    "n_members": len(snapshot.artifact.member_ids),
                    "n_items": len(snapshot.artifact.item_ids),
                }
            )
        variants.append(info)
    return ModelsResponse(variants=variants)
