"""Every recommender of member-recsys, by the name the CLI, the model artifact and the API use."""

from __future__ import annotations

from training.config import MODEL_NAMES
from training.models.als import ALSRecommender
from training.models.base import ModelFitError, Recommender
from training.models.content import ContentRecommender
from training.models.ease import EASERecommender
from training.models.item_knn import ItemKNNRecommender
from training.models.lightfm_model import LightFMRecommender
from training.models.popular import PopularityRecommender
from training.models.repeat_explore import RepeatExploreRecommender
from training.models.rerank import RerankRecommender
from training.models.tifu_knn import TIFUKNNRecommender
from training.models.top_personal import TopPersonalRecommender
from training.models.user_knn import UserKNNRecommender

__all__ = ["MODEL_CLASSES", "ModelFitError", "Recommender", "model_class"]

_CLASSES = (
    PopularityRecommender,
    ItemKNNRecommender,
    EASERecommender,
    ALSRecommender,
    LightFMRecommender,
    ContentRecommender,
    UserKNNRecommender,
    TopPersonalRecommender,
    TIFUKNNRecommender,
    RepeatExploreRecommender,
    RerankRecommender,
)
MODEL_CLASSES: dict[str, type[Recommender]] = {model.name: model for model in _CLASSES}
if tuple(MODEL_CLASSES) != MODEL_NAMES:  # the CLI lists models without importing them
    raise ImportError(f"training.config.MODEL_NAMES {MODEL_NAMES} != {tuple(MODEL_CLASSES)}")


def model_class(name: str) -> type[Recommender]:
    """The class of a model name; unknown names list the known ones."""
    from features.errors import ConfigError

    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(MODEL_CLASSES)}"
        ) from None
