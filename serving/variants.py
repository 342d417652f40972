"""A/B assignment: each member belongs to one variant, the same one in every worker and run.

The member id is hashed (BLAKE2b, keyed by a salt) to a point in [0, 1), and the variants
own consecutive slices of that interval in proportion to their weights. A stable hash, not
Python's ``hash`` (randomised per process), keeps a member in their arm across workers and
restarts; changing the salt reshuffles everyone for a new experiment.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

__all__ = ["VariantAssigner", "member_point"]

_SCALE = float(1 << 64)


def member_point(member_id: str, salt: str = "") -> float:
    """The member's stable position in [0, 1)."""
    digest = hashlib.blake2b(
        member_id.encode("utf-8", "surrogateescape"),
        digest_size=8,
        key=salt.encode()[:64],
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


class VariantAssigner:
    """Splits members between variants by weight (weights are normalised)."""

    def __init__(self, weights: Mapping[str, float], salt: str = "") -> None:
        if not weights or min(weights.values()) <= 0:
            raise ValueError(f"variant weights must be positive, got {dict(weights)}")
        total = sum(weights.values())
        self.names = list(weights)
        self.shares = {name: weight / total for name, weight in weights.items()}
        self._bounds = list(accumulate(self.shares[name] for name in self.names))[:-1]
        self._salt = salt

    def assign(self, member_id: str) -> str:
        """The variant of ``member_id``."""
        if len(self.names) == 1:
            return self.names[0]
        return self.names[bisect_right(self._bounds, member_point(member_id, self._salt))]

    @property
    def primary(self) -> str:
        """The variant with the largest share (the first of equals): it answers requests that
        belong to no member, such as similar items."""
        return max(self.names, key=lambda name: self.shares[name])
