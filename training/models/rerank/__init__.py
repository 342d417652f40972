"""Two-stage recommendation: base models propose candidates, a LightGBM ranker orders them.

Why two stages: each base model sees one kind of evidence (EASE and item-kNN co-occurrence, ALS
latent factors, popularity), and none of them sees *when* things happened. A ranker trained on
labelled history can weigh the base models per member and add what they miss: how recent a
member's interest is, which items are trending, price fit, whether the member already buys
from the item's product family.

Training (:meth:`RerankRecommender.fit`), on the training data alone:

1. ``windows`` label windows of ``validation_days`` days are carved from the end of the data,
   each ``window_step_days`` earlier than the last. Per window the base models and the item
   and member statistics are fit on the interactions *before* the window, exactly as they
   will be fit on all the data for serving (:mod:`.windows`).
2. Candidates per member: the top ``candidates`` items of each base model among the items the
   member has not interacted with, plus every item the member has interacted with, each with
   its features (:mod:`.first_stage`, features and statistics in :mod:`.statistics`).
3. Labels: an item the member purchases in the window and had not purchased before (the
   evaluation protocol's "relevant"); items purchased before are dropped from the groups, since
   they are never recommended. Members without history before the window or without any
   positive candidate carry no ranking signal and are left out (:mod:`.examples`).
4. A LightGBM ranker is trained on the groups (member x window), early-stopped on a held-out
   share of the members (:mod:`.ranker`); its validation NDCG@10 on the held-out members of the
   latest window, beside each base model's, is kept in
   :attr:`RerankRecommender.validation_report`.
5. The base models and statistics are refit on all the data for serving.

Scoring (:mod:`.model`): the candidates, by the ranker's score, above every other item, so a
list always fills up.

Persistence: the base models in subdirectories (their own save/load), the ranker as LightGBM
text, statistics as ``.npy``/``.npz`` and the rest in ``rerank.json``; no pickle.
"""

from __future__ import annotations

from training.models.rerank.model import RerankRecommender
from training.models.rerank.params import RerankParams
from training.models.rerank.statistics import FEATURE_NAMES

__all__ = ["FEATURE_NAMES", "RerankParams", "RerankRecommender"]
