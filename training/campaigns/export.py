"""A campaign export: the plain export's file, under a campaign id, with its rules applied, its
sends in the ledger, a reasons file and a manifest.

Three files sit side by side, all written under temporary names and renamed when complete:
``<stem>.csv|parquet`` (what is sent, the columns of ``recsys export``), ``<stem>.excluded.<ext>``
(who and what was left out, and why: :mod:`training.campaigns.rules`) and
``<stem>.manifest.json`` (:func:`manifest_path`: what was exported, from which model artifact,
with which parameters, the counts by outcome and the other files' checksums). The ledger's rows
are written batch by batch; if the export fails, they are deleted again, so that a failed run
neither caps nor reports anything.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from features.errors import ConfigError
from training.artifact import ModelArtifact
from training.artifact.manifest import sha256
from training.campaigns.ledger import ITEM_SEPARATOR, CampaignLedger
from training.campaigns.rules import EXCLUDED_SCHEMA, CampaignOutcomes, CampaignRules, FrequencyCaps
from training.export import (
    DEFAULT_BATCH,
    ExportKind,
    ExportSummary,
    ItemNames,
    TableWriter,
    export_members,
)
from training.live import MemberEvents

__all__ = [
    "MANIFEST_FORMAT",
    "CampaignPlan",
    "CampaignSummary",
    "excluded_path",
    "export_campaign",
    "manifest_path",
    "new_campaign_id",
]

MANIFEST_FORMAT = 1
#: Rows of the reasons file written at a time (a few per batch arrive).
REASON_ROWS = 65_536
_FAMILY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")


@dataclass(frozen=True)
class CampaignPlan:
    """What makes an export a campaign: its family (the holdout draw and the item cap are per
    family), the holdout share and seed, the caps, the suppressed member ids and the offers
    file, if any (:mod:`training.campaigns.offers`)."""

    family: str
    holdout_share: float = 0.1
    seed: int = 0
    caps: FrequencyCaps = field(default_factory=FrequencyCaps)
    suppressed: Collection[str] = frozenset()
    offers_file: Path | None = None

    def __post_init__(self) -> None:
        if not _FAMILY.fullmatch(self.family):
            raise ConfigError(
                f"--campaign {self.family!r}: a family name is 1 to 48 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit (e.g. win-back)"
            )
        if not 0.0 <= self.holdout_share < 1.0:
            raise ConfigError(f"--holdout {self.holdout_share}: a share in [0, 1)")


@dataclass(frozen=True)
class CampaignSummary:
    """What a campaign export wrote: its id, the plain export's summary, the outcomes and the
    manifest."""

    campaign_id: str
    export: ExportSummary
    outcomes: CampaignOutcomes
    manifest: Path


def manifest_path(out: Path) -> Path:
    """The manifest next to an export file: ``<stem>.manifest.json``."""
    return out.with_name(f"{out.stem}.manifest.json")


def excluded_path(out: Path) -> Path:
    """The reasons file next to an export file, in its format: ``<stem>.excluded.<ext>``."""
    return out.with_name(f"{out.stem}.excluded{out.suffix}")


def new_campaign_id(family: str, at: float) -> str:
    """``<family>-<UTC time>-<8 hex digits>``: sortable by time, unique without a registry."""
    stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{family}-{stamp}-{uuid.uuid4().hex[:8]}"


def export_campaign(
    artifact: ModelArtifact,
    out: Path,
    ledger: CampaignLedger,
    plan: CampaignPlan,
    *,
    kind: ExportKind = "recommendations",
    n: int = 10,
    member_ids: Sequence[str] | None = None,
    model: str | None = None,
    batch: int = DEFAULT_BATCH,
    events: MemberEvents | None = None,
    progress: Callable[[int], None] | None = None,
    as_of: datetime | None = None,
    model_version: str | None = None,
    filters: Mapping[str, Any] | None = None,
    sent_at: float | None = None,
    erased: Collection[str] = (),
) -> CampaignSummary:
    """Export ``kind`` for ``member_ids`` (default: every member) as a campaign of
    ``plan.family``: suppression, holdout and caps applied, sends recorded in ``ledger``,
    reasons and manifest written beside ``out``. ``filters`` (how the members were chosen)
    and ``model_version`` go into the manifest as given; ``sent_at`` (epoch s, default now)
    is the sends' time, from which the caps look back. ``erased``: members erased on request,
    neither sent to nor held out."""
    _require_separable_items(artifact)
    moment = time.time() if sent_at is None else sent_at
    campaign_id = new_campaign_id(plan.family, moment)
    excluded = excluded_path(out)
    excluded_partial = excluded.with_name(f".{excluded.name}.partial")
    offers = _offers(artifact, plan, member_ids, moment)
    written: list[Path] = []
    try:
        with TableWriter(
            excluded_partial, EXCLUDED_SCHEMA, csv=out.suffix == ".csv", buffer_rows=REASON_ROWS
        ) as writer:
            rules = CampaignRules(
                campaign_id, plan.family, kind, n, plan.holdout_share, plan.seed, plan.caps,
                plan.suppressed, ledger, writer, moment, ItemNames(artifact), offers,
            )  # fmt: skip
            with rules:
                summary = export_members(
                    artifact, out, kind=kind, n=n, member_ids=member_ids, model=model,
                    batch=batch, events=events, progress=progress, as_of=as_of, rules=rules,
                    erased=erased,
                )  # fmt: skip
            written.append(out)
        os.replace(excluded_partial, excluded)
        written.append(excluded)
        manifest = manifest_path(out)
        document = _manifest(
            campaign_id, plan, artifact, kind, n, model, model_version, filters, moment,
            rules.outcomes, summary, written,
        )  # fmt: skip
        partial_manifest = manifest.with_name(f".{manifest.name}.partial")
        partial_manifest.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(partial_manifest, manifest)
    except BaseException:
        excluded_partial.unlink(missing_ok=True)
        for path in written:
            path.unlink(missing_ok=True)
        ledger.discard(campaign_id)
        raise
    return CampaignSummary(campaign_id, summary, rules.outcomes, manifest)


def _offers(
    artifact: ModelArtifact, plan: CampaignPlan, member_ids: Sequence[str] | None, sent_at: float
) -> pl.DataFrame | None:
    """Each would-be treatment member's offer, chosen once for the campaign (None: no offers
    file)."""
    if plan.offers_file is None:
        return None
    from features.offers import load_offers
    from training.campaigns.offers import campaign_offers
    from training.roster import Roster

    members = (
        [*artifact.member_ids.external_ids.tolist(), *Roster(artifact).member_ids.tolist()]
        if member_ids is None
        else list(dict.fromkeys(member_ids))
    )
    return campaign_offers(
        artifact, load_offers(plan.offers_file), members, family=plan.family,
        holdout_share=plan.holdout_share, seed=plan.seed, suppressed=plan.suppressed,
        sent_at=sent_at,
    )  # fmt: skip


def _require_separable_items(artifact: ModelArtifact) -> None:
    """The ledger joins item ids with :data:`ITEM_SEPARATOR`; refuse ids that hold it."""
    names = pl.Series(artifact.item_ids.external_ids, dtype=pl.Utf8)
    holding = names.filter(names.str.contains(ITEM_SEPARATOR, literal=True))
    if holding.len():
        raise ConfigError(
            f"the model artifact {artifact.path} has item ids holding the ASCII unit separator "
            f"(e.g. {holding[0]!r}), which the campaign ledger cannot store; clean the item ids "
            "and retrain"
        )


def _manifest(
    campaign_id: str,
    plan: CampaignPlan,
    artifact: ModelArtifact,
    kind: ExportKind,
    n: int,
    model: str | None,
    model_version: str | None,
    filters: Mapping[str, Any] | None,
    sent_at: float,
    outcomes: CampaignOutcomes,
    summary: ExportSummary,
    files: list[Path],
) -> dict[str, Any]:
    data_end = artifact.data_end
    counts = {**asdict(outcomes), "campaign_set": outcomes.campaign_set}
    return {
        "format_version": MANIFEST_FORMAT,
        "campaign_id": campaign_id,
        "family": plan.family,
        "sent_at": sent_at,
        "created_at": datetime.fromtimestamp(sent_at, UTC).isoformat(),
        "artifact": {
            "path": str(artifact.path),
            "model_version": model_version,
            "chosen_model": artifact.chosen,
            "data_end": data_end.isoformat() if data_end is not None else None,
        },
        "kind": kind,
        "n": n,
        "model": model or (artifact.chosen if kind == "recommendations" else None),
        "filters": dict(filters or {}),
        "holdout_share": plan.holdout_share,
        "seed": plan.seed,
        "caps": asdict(plan.caps),
        "suppressed_ids": len(plan.suppressed),
        "offers": (
            {
                "file": str(plan.offers_file),
                "sha256": sha256(plan.offers_file),
                "members_with_offer": outcomes.offered,
            }
            if plan.offers_file is not None
            else None
        ),
        "counts": {
            "selected": summary.members,
            **counts,
            "rows": summary.rows,
            "unknown_members": summary.unknown_members,
            "live_members": summary.live_members,
        },
        "seconds": round(summary.seconds, 3),
        "files": {
            path.name: {"sha256": sha256(path), "bytes": path.stat().st_size} for path in files
        },
    }
