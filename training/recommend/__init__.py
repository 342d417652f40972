"""Answering "what should these members see?" from a loaded model artifact, for any caller.

The CLI (`recsys recommend`), campaign exports and the API all answer through
:class:`ArtifactRecommender`, so that the rules are the same everywhere:

* a member the artifact knows is scored by the requested model (default: the chosen one);
* what a caller knows beyond the artifact (:class:`MemberContext`: events since it was built,
  declared preferences, a segment) joins the member's history and exclusions, so that fresh
  behaviour counts without retraining and a member the artifact lacks but who has events gets
  a personal answer from the model;
* a member with nothing to go on gets popularity (of their segment when known), flagged
  ``fallback``; so is a member answered from declared preferences (by the content model);
* exclusions (items already purchased), the category filter and unavailable catalog items
  are applied before the top-n cut, never after, and a list that a model could not fill is
  completed from popularity, so every list holds exactly ``n`` distinct items whenever the
  filtered catalog has that many; an optional cap per category diversifies it.

Where each rule lives:

* ``recommender`` -- :class:`ArtifactRecommender`, the path of one list from request to ids;
* ``context`` -- :class:`MemberContext` and the members' history and exclusion rows;
* ``candidates`` -- the catalog filter, the category cap and a model's top items (FAISS or
  exact scoring);
* ``fallback`` -- popularity: answering members with nothing to go on, completing lists;
* ``answers`` -- the lists returned (:class:`Recommendation`, :class:`RankedLists`).
"""

from training.recommend.answers import (
    DECLARED_MODEL,
    FALLBACK_MODEL,
    ItemList,
    RankedLists,
    Recommendation,
)
from training.recommend.candidates import catalog_flag
from training.recommend.context import MemberContext
from training.recommend.recommender import ArtifactRecommender

__all__ = [
    "DECLARED_MODEL",
    "FALLBACK_MODEL",
    "ArtifactRecommender",
    "ItemList",
    "MemberContext",
    "RankedLists",
    "Recommendation",
    "catalog_flag",
]
