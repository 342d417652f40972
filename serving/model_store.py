"""The loaded model artifacts, one snapshot per A/B variant, swapped atomically on reload.

A reload (``POST /v1/admin/reload``, or the poller seeing a moved alias or a rewritten
artifact directory) fetches and loads the new model artifact in a worker thread, verifies every
checksum, and only then replaces the variant's snapshot reference. An artifact that fails at any
step, its manifest included, is refused, logged and counted: the previous snapshot keeps serving.
Requests in flight finish with the snapshot they started with.

What the poller compares is the source's *marker* (:meth:`ArtifactSource.marker`), which
changes whenever what the source would give changes: for a directory, any file's size,
modification time or inode. A refused state is not retried until its marker changes, so an
artifact fixed in place (same manifest) is picked up at the next poll. A reload that finds the
version already loaded verifies it again and is counted as ``unchanged``, not ``swapped``.

Each worker process holds its own store. A reload request reaches one worker, which records it
in the event store (:mod:`serving.reload_requests`); every other worker sharing the store
follows within ``RECSYS_RELOAD_FOLLOW_SECONDS`` (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from features.errors import RecsysError
from features.pseudonyms import key_mismatch
from serving import metrics
from serving.artifact_sources import ArtifactSource, SourceUnavailableError
from serving.errors import NotReadyError
from serving.settings import VariantConfig
from serving.snapshots import ModelSnapshot, load_snapshot
from serving.variants import VariantAssigner
from training.artifact import ArtifactError

__all__ = ["ModelStore", "ReloadOutcome"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload of one variant did."""

    variant: str
    version: str
    previous_version: str | None

    @property
    def swapped(self) -> bool:
        """False when the source still held the version that was loaded."""
        return self.version != self.previous_version


class ModelStore:
    """Snapshots by variant, the member -> variant assignment, reloads and polling."""

    def __init__(
        self,
        variants: Mapping[str, VariantConfig],
        sources: Mapping[str, ArtifactSource],
        *,
        salt: str = "",
        verify: bool = True,
        member_key: str | None = None,
    ) -> None:
        """``member_key``: the fingerprint of the server's member id key (None: no key); an
        artifact whose member ids are not of that key (raw ids with a key, pseudonyms without
        one or of another) is refused, since no request would match its members."""
        self.configs = dict(variants)
        self.sources = dict(sources)
        weights = {name: config.weight for name, config in variants.items()}
        # Without any variant, members map to a placeholder that is never loaded, so that
        # every request gets the "no model artifact is configured" 503 from :meth:`snapshot`.
        self.assigner = VariantAssigner(weights or {"unconfigured": 1.0}, salt)
        self._verify = verify
        self._member_key = member_key
        self._snapshots: Mapping[str, ModelSnapshot] = MappingProxyType({})
        #: The source marker each variant's snapshot was loaded from, and the last refused.
        self._markers: dict[str, str] = {}
        self._refused: dict[str, str] = {}
        self._lock = asyncio.Lock()

    # -- reading -----------------------------------------------------------------------------

    @property
    def snapshots(self) -> Mapping[str, ModelSnapshot]:
        """The current snapshot of every loaded variant."""
        return self._snapshots

    @property
    def ready(self) -> bool:
        """True once every configured variant has a model artifact loaded."""
        return bool(self.configs) and all(name in self._snapshots for name in self.configs)

    def snapshot(self, variant: str) -> ModelSnapshot:
        """The variant's snapshot; 503 while it has none."""
        try:
            return self._snapshots[variant]
        except KeyError:
            if not self.configs:
                raise NotReadyError(
                    "no model artifact is configured: set RECSYS_ARTIFACT, RECSYS_MODEL_URI or "
                    "RECSYS_VARIANTS (see docs/operations.md)"
                ) from None
            raise NotReadyError(f"variant {variant!r} has no model artifact loaded yet") from None

    def for_member(self, member_id: str) -> ModelSnapshot:
        """The snapshot of the variant ``member_id`` is assigned to."""
        return self.snapshot(self.assigner.assign(member_id))

    def primary(self) -> ModelSnapshot:
        """The snapshot that answers requests that belong to no member."""
        return self.snapshot(self.assigner.primary)

    # -- reloading ---------------------------------------------------------------------------

    async def reload(
        self, variants: Sequence[str] | None = None, *, only_if_changed: bool = False
    ) -> list[ReloadOutcome]:
        """Reload ``variants`` (default all). Raises the first refusal after trying them all
        (``ArtifactError``: refused artifact; ``SourceUnavailableError``: source unreachable); the
        variants that failed keep their previous snapshot."""
        outcomes, failures = [], []
        async with self._lock:
            for variant in variants or list(self.configs):
                try:
                    outcome = await self._reload_one(variant, only_if_changed)
                except (ArtifactError, SourceUnavailableError) as error:
                    failures.append((variant, error))
                    continue
                if outcome is not None:
                    outcomes.append(outcome)
        if failures:
            raise _combined(failures)
        return outcomes

    async def _reload_one(self, variant: str, only_if_changed: bool) -> ReloadOutcome | None:
        """Load and verify the variant's source; with ``only_if_changed`` (the poller), only
        when its marker is neither the one last loaded nor the one last refused. Loading
        the version already served is verified like any other and counted ``unchanged``."""
        source = self.sources[variant]
        current = self._snapshots.get(variant)
        previous = current.version if current is not None else None
        try:
            marker = await asyncio.to_thread(source.marker)
        except SourceUnavailableError as error:
            self._unavailable(variant, error)
            raise
        if only_if_changed and marker in (self._markers.get(variant), self._refused.get(variant)):
            return None
        try:
            version = await asyncio.to_thread(source.current_version)
            snapshot = await asyncio.to_thread(self._load, variant, source, version)
        except SourceUnavailableError as error:
            self._unavailable(variant, error)
            raise
        except ArtifactError as error:
            self._refuse(variant, marker, error)
            raise
        except Exception as error:  # an artifact is untrusted input: any failure refuses it
            refusal = ArtifactError(f"{source.description} cannot be loaded ({error!r}); refused")
            self._refuse(variant, marker, refusal)
            raise refusal from error
        self._markers[variant] = marker
        self._refused.pop(variant, None)
        self._snapshots = MappingProxyType({**self._snapshots, variant: snapshot})
        if snapshot.version == previous:  # verified again; the answers stay the same
            metrics.RELOADS.labels(variant=variant, outcome="unchanged").inc()
            return ReloadOutcome(variant, snapshot.version, previous)
        metrics.model_loaded(variant, snapshot, previous)
        logger.info("variant %s now serves %s (%s)", variant, snapshot.version, source.description)
        return ReloadOutcome(variant, snapshot.version, previous)

    def _load(self, variant: str, source: ArtifactSource, version: str) -> ModelSnapshot:
        path = source.fetch(version)
        snapshot = load_snapshot(variant, version, path, verify=self._verify)
        mismatch = key_mismatch(snapshot.artifact.member_key, self._member_key)
        if mismatch is not None:
            raise ArtifactError(f"model artifact {source.description}: {mismatch}; refused")
        return replace(snapshot, version=source.loaded_version(snapshot.artifact.manifest, version))

    @staticmethod
    def _unavailable(variant: str, error: SourceUnavailableError) -> None:
        metrics.RELOADS.labels(variant=variant, outcome="unavailable").inc()
        logger.warning("variant %s: %s; nothing changed", variant, error)

    def _refuse(self, variant: str, marker: str, error: Exception) -> None:
        self._refused[variant] = marker
        metrics.RELOADS.labels(variant=variant, outcome="refused").inc()
        logger.error("variant %s: model artifact refused, previous one kept: %s", variant, error)

    async def poll_forever(self, interval: float) -> None:
        """Reload every variant whose source changed, every ``interval`` seconds; also loads
        variants that failed at start-up once their source is fixed."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload(only_if_changed=True)
            except RecsysError as error:  # refusals are logged where they happen
                logger.debug("poll: %s", error)
            except Exception:  # the poller must outlive any one failure
                logger.exception("poll failed; trying again in %s s", interval)


def _combined(failures: list[tuple[str, Exception]]) -> Exception:
    """One error for every failed variant; a refused artifact outranks an unreachable source."""
    message = "; ".join(f"variant {variant}: {error}" for variant, error in failures)
    if any(isinstance(error, ArtifactError) for _, error in failures):
        return ArtifactError(message)
    return SourceUnavailableError(message)
