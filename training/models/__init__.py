"""Every recommender of member-recsys, by the name the CLI, the model artifact and the API use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.config import MODEL_NAMES
from training.dataset import TrainingData
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

__all__ = ["MODEL_CLASSES", "FitModel", "ModelFitError", "Recommender", "fit_model", "model_class"]

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


#: How a run fits one model: its name, its parameters and the data -> the fitted model. Tuning
#: and the lineup take one, so that another engine (``training.spark``) fits the models its own
#: way under the same protocol; :func:`fit_model` is the default.
FitModel = Callable[[str, dict[str, Any], TrainingData], Recommender]


def fit_model(name: str, params: dict[str, Any], data: TrainingData) -> Recommender:
    """Fit model ``name`` with ``params`` on ``data``, in this process."""
    return model_class(name)(**params).fit(data)
