"""Turn what the event store and the request know about a member into a ``MemberContext``.

Events that occurred after the model artifact's data ended are behaviour the models have not
seen: each interaction adds its training weight (view < click < cart < purchase) to the member's
history row, and each purchase joins the exclusions. Impressions are not interactions (they
have no weight) and items the artifact does not know cannot be scored; both are skipped. A
member with no behaviour at all may still bring declared preferences (liked items) and a
segment.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.errors import InvalidParameterError
from serving.event_store import StoredEvent
from serving.snapshots import ModelSnapshot
from training.live import live_context
from training.recommend import MemberContext

__all__ = ["member_context"]

#: Weight of a declared preference: any positive constant (the models normalise histories).
_DECLARED_WEIGHT = 1.0


def member_context(
    snapshot: ModelSnapshot,
    events: Sequence[StoredEvent],
    *,
    member_id: str,
    known: bool,
    segment: str | None = None,
    liked: Sequence[str] = (),
) -> MemberContext | None:
    """The member's context, or None when there is nothing beyond the model artifact to add.

    Declared preferences and the segment only matter for members the artifact does not know
    and who have no behaviour yet; an unknown ``segment`` name is a 422. Without a ``segment``,
    a member the artifact carries without events (a member of the members file who never shopped)
    is answered by their own segment.
    """
    lookup = snapshot.artifact.item_ids.get
    code = _segment_code(snapshot, segment)
    if code is None and not known:
        code = snapshot.carried_segments.get(member_id)
    live = live_context(events, lookup, snapshot.event_weights, segment=code)
    if live is not None:
        return live
    if known:
        return None
    declared = [index for item in liked if (index := lookup(item)) is not None]
    return MemberContext(
        items=declared,
        weights=[_DECLARED_WEIGHT] * len(declared),
        segment=code,
        declared=bool(declared),
    )


def _segment_code(snapshot: ModelSnapshot, segment: str | None) -> int | None:
    if segment is None:
        return None
    try:
        return snapshot.segment_names.index(segment)
    except ValueError:
        known = ", ".join(snapshot.segment_names) or "none (the model artifact has no segments)"
        raise InvalidParameterError(
            f"segment: unknown segment {segment!r}; known: {known}"
        ) from None
