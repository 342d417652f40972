"""A loaded, verified model artifact with everything a request needs, as one immutable object.

Requests take a snapshot reference once and use only it, so that a reload swapping in a new
snapshot (one reference assignment, atomic under the GIL) never mixes two artifacts within one
answer; the old snapshot lives on until its last request finishes.

Everything a route answers from is read when the snapshot is loaded, never by path later: by
then the path may lead to another version (a directory swapped in, a symlink switched) or to
nothing (the old directory deleted). Arrays are memory-mapped at load, which keeps the files
they were read from; small files (the evaluation report, metrics, rules) are read whole.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from features import columns as col
from features.tier_rules import TIER_RULES_FILE, TierRules, load_tier_rules
from serving.profiles import ProfileRows
from training.artifact import METRICS_FILE, REPORT_FILE, RULES_FILE, ModelArtifact, load_artifact
from training.buy_again import BuyAgainTable
from training.live import event_weights_of, live_since
from training.member_bundles import BundleComposer
from training.member_kpis import KPIS_FILE, PROFILES_FILE
from training.models import MODEL_CLASSES
from training.recommend import ArtifactRecommender
from training.roster import Roster
from training.rules import RuleIndex

__all__ = ["ModelSnapshot", "load_snapshot"]


@dataclass(frozen=True)
class ModelSnapshot:
    """One variant's model artifact, ready to answer."""

    variant: str
    version: str
    artifact: ModelArtifact
    recommender: ArtifactRecommender
    #: Events that occurred after this (epoch seconds) are live history: the manifest's
    #: ``data_end`` (the last event the artifact learned from), else its ``created_at``.
    live_since: float
    loaded_at: datetime
    #: Weight of each interaction event in a history row, as training used them.
    event_weights: Mapping[str, float]
    #: Display fields per internal item index (None where the catalog has none).
    titles: Sequence[str | None]
    categories: Sequence[str | None]
    #: Every category of the catalog (what the category filter accepts).
    category_names: frozenset[str]
    #: Member bundles from the recommender and the rules.
    composer: BundleComposer
    #: The artifact's frequently-bought-together rules (None: the artifact has none).
    rules: RuleIndex | None = None
    #: The training run's metrics.json and report.html as loaded (None: not in the artifact).
    evaluation_json: bytes | None = None
    evaluation_html: bytes | None = None
    #: Segment code of each member the artifact carries without events (``training.roster``):
    #: answered with their segment's popularity, as a campaign export answers them.
    carried_segments: Mapping[str, int] = field(default_factory=dict)
    #: The dashboard's key figures and member profiles (``training.member_kpis``; None: the
    #: artifact predates them).
    kpis_json: bytes | None = None
    profiles: pl.DataFrame | None = None
    #: Each member's row of ``profiles``, found in O(1) (None: no profiles); and the tier
    #: rules training applied (``features.tier_rules``; None: the artifact predates them).
    profile_rows: ProfileRows | None = None
    tier_rules: TierRules | None = None
    #: Every member's past items with their purchase cycles (``training.buy_again``; None: the
    #: artifact predates them).
    buy_again: BuyAgainTable | None = None

    @property
    def segment_names(self) -> tuple[str, ...]:
        return self.artifact.segment_names

    def segment_of(self, member_index: int) -> str | None:
        """The artifact's segment name of a known member (None: unknown or unsegmented)."""
        codes = self.artifact.member_segments
        if member_index < 0 or codes is None:
            return None
        code = int(codes[member_index])
        return self.artifact.segment_names[code] if code >= 0 else None

    def segment_of_member(self, member_id: str, member_index: int | None) -> str | None:
        """The segment name of a member the artifact indexes or carries without events."""
        if member_index is not None:
            return self.segment_of(member_index)
        code = self.carried_segments.get(member_id, -1)
        return self.artifact.segment_names[code] if code >= 0 else None


def _read_extra(artifact: ModelArtifact, name: str) -> bytes | None:
    path = artifact.extra_files.get(name)
    return path.read_bytes() if path is not None else None


def _display_column(catalog: pl.DataFrame | None, name: str, n_items: int) -> list[str | None]:
    if catalog is None or name not in catalog.columns:
        return [None] * n_items
    return catalog.get_column(name).cast(pl.Utf8).to_list()


def load_snapshot(variant: str, version: str, path: Path, *, verify: bool = True) -> ModelSnapshot:
    """Load, verify and warm the model artifact at ``path``; a bad one raises ``ArtifactError``.

    Everything a first request would otherwise build lazily (the member id dict, the
    recommender's masks) is built here, off the request path.
    """
    artifact = load_artifact(path, mmap=True, verify=verify, model_classes=MODEL_CLASSES)
    recommender = ArtifactRecommender(artifact)
    artifact.member_ids.get("")  # builds the id -> index dicts now, not on a request
    artifact.item_ids.get("")
    n_items = len(artifact.item_ids)
    rules_file = _read_extra(artifact, RULES_FILE)
    rules = pl.read_parquet(io.BytesIO(rules_file)) if rules_file is not None else None
    metrics = _read_extra(artifact, METRICS_FILE)
    profiles = _read_profiles(artifact)
    rows = ProfileRows.build(profiles, artifact.member_ids) if profiles is not None else None
    tier_rules_path = artifact.extra_files.get(TIER_RULES_FILE)
    return ModelSnapshot(
        variant=variant,
        version=version,
        artifact=artifact,
        recommender=recommender,
        live_since=live_since(artifact),
        loaded_at=datetime.now(UTC),
        event_weights=event_weights_of(artifact),
        titles=_display_column(artifact.catalog, col.TITLE, n_items),
        categories=_display_column(artifact.catalog, col.CATEGORY, n_items),
        category_names=frozenset(recommender.categories),
        composer=BundleComposer(recommender, rules),
        rules=RuleIndex(rules, artifact.item_ids.get) if rules is not None else None,
        evaluation_json=metrics,
        evaluation_html=_read_extra(artifact, REPORT_FILE),
        carried_segments=Roster(artifact).codes_by_member(),
        kpis_json=_read_extra(artifact, KPIS_FILE),
        profiles=profiles,
        profile_rows=rows,
        tier_rules=load_tier_rules(tier_rules_path) if tier_rules_path is not None else None,
        buy_again=BuyAgainTable.of(recommender),
    )


def _read_profiles(artifact: ModelArtifact) -> pl.DataFrame | None:
    profiles = _read_extra(artifact, PROFILES_FILE)
    return pl.read_parquet(io.BytesIO(profiles)) if profiles is not None else None
