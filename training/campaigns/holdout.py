"""The holdout (control) group: which members of a campaign family are held back.

A member's group follows from a hash of (family, seed, member id) alone, never from the order or
the size of the export, so that a member stays in the same group across every export of a family
(the nightly re-export of "win-back" holds back the same members) while another family, or
another seed, draws afresh. BLAKE2b is used because it is the same in every Python version and
on every machine; Polars' own hash is documented as unstable across versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["holdout_draws", "in_holdout"]

_SCALE = float(2**64)


def holdout_draws(family: str, member_ids: Sequence[str], seed: int) -> np.ndarray:
    """Each member's uniform draw in [0, 1) for ``family`` and ``seed``."""
    prefix = f"{family}\x1f{seed}\x1f".encode()
    digests = b"".join(
        hashlib.blake2b(prefix + member.encode(), digest_size=8).digest() for member in member_ids
    )
    return np.frombuffer(digests, dtype=">u8").astype(np.float64) / _SCALE


def in_holdout(family: str, member_ids: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Whether each member is in the holdout group: their draw is below ``share``."""
    return holdout_draws(family, member_ids, seed) < share
