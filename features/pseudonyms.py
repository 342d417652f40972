"""Member pseudonyms: a keyed hash of every member id, so that nothing the product writes holds
a raw one.

A retailer who turns pseudonymisation on keeps one secret, ``RECSYS_MEMBER_ID_KEY``. Training
(``recsys train --pseudonymise-members``) replaces every member id of the interactions and the
members file by its pseudonym before anything is written, and the server, given the same key,
replaces the ids the storefront sends (paths, event and batch bodies) the same way; the model
artifact, MLflow, the exports and the event store hold only pseudonyms. The mapping back stays
with the retailer: ``recsys pseudonymise`` writes ``member_id,pseudonym`` pairs of their own ids.

A pseudonym is ``p_`` and the first 32 hex digits (128 bits) of HMAC-SHA256(key, member id):
the same id and key always give the same pseudonym, nobody without the key can compute one or
invert it (an unkeyed hash of a member number is reversed by hashing every number), and it
fits the event store's 128-character id columns. An id that already has this form is kept as
it is, so that pseudonymised data (the event store's, a file the retailer hashed) can be fed
back in without being hashed twice; a raw member id of exactly that form would be taken for a
pseudonym.

What an artifact was trained with is recorded as a *fingerprint* of the key (an HMAC of a fixed
text, never the key): serving and the commands that read member ids refuse an artifact whose
fingerprint differs from their key's (:func:`key_mismatch`), since its ids would match nothing.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from typing import Final

import polars as pl

from features.columns import MEMBER_ID
from features.errors import ConfigError

__all__ = [
    "KEY_VARIABLE",
    "MIN_KEY_LENGTH",
    "PSEUDONYM",
    "MemberPseudonyms",
    "is_pseudonym",
    "key_mismatch",
]

#: The environment variable (and serving setting) holding the key.
KEY_VARIABLE: Final = "RECSYS_MEMBER_ID_KEY"
#: Shorter keys are refused: a guessable key makes every pseudonym reversible.
MIN_KEY_LENGTH: Final = 16
#: Column of the retailer's mapping (:meth:`MemberPseudonyms.mapping`) beside ``member_id``.
PSEUDONYM: Final = "pseudonym"

_PREFIX: Final = "p_"
_HEX_DIGITS: Final = 32
_FINGERPRINT_TEXT: Final = b"member-recsys key fingerprint"
_FINGERPRINT_DIGITS: Final = 16
_PSEUDONYM_PATTERN: Final = re.compile(rf"{_PREFIX}[0-9a-f]{{{_HEX_DIGITS}}}")


def is_pseudonym(member_id: str) -> bool:
    """True when ``member_id`` has the form of a pseudonym (``p_`` and 32 lower-case hex)."""
    return _PSEUDONYM_PATTERN.fullmatch(member_id) is not None


class MemberPseudonyms:
    """The pseudonyms of one key. The key is never shown (``repr`` gives the fingerprint)."""

    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{KEY_VARIABLE} is {len(key)} characters long; use a random key of at least "
                f"{MIN_KEY_LENGTH} (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        self._key = key.encode("utf-8")
        digest = hmac.digest(self._key, _FINGERPRINT_TEXT, "sha256")
        #: What a model artifact records of the key: tells keys apart, reveals nothing of one.
        self.fingerprint = digest.hex()[:_FINGERPRINT_DIGITS]

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, needed_by: str
    ) -> MemberPseudonyms:
        """The pseudonyms of the key in ``$RECSYS_MEMBER_ID_KEY``. The key is read from the
        environment only, never from an option: a command line lands in shell histories, process
        lists and MLflow params. ``needed_by`` names what asked, for the error when it is unset."""
        key = (os.environ if environ is None else environ).get(KEY_VARIABLE, "")
        if not key:
            raise ConfigError(
                f"{needed_by} needs the member id key: set {KEY_VARIABLE} to the retailer's "
                "secret (the same one for training, serving and exports)"
            )
        return cls(key)

    def __repr__(self) -> str:
        return f"MemberPseudonyms(fingerprint={self.fingerprint!r})"

    def of(self, member_id: str) -> str:
        """The pseudonym of ``member_id`` (an id that already is one is returned as it is)."""
        if is_pseudonym(member_id):
            return member_id
        digest = hmac.digest(self._key, member_id.encode("utf-8"), "sha256")
        return _PREFIX + digest.hex()[:_HEX_DIGITS]

    def of_all(self, member_ids: Iterable[str]) -> list[str]:
        """The pseudonym of each id, in order."""
        return [self.of(member_id) for member_id in member_ids]

    def in_column(self, frame: pl.DataFrame, column: str = MEMBER_ID) -> pl.DataFrame:
        """``frame`` with the ids of ``column`` replaced by their pseudonyms (nulls stay null).

        Each distinct id is hashed once and the rows are mapped to the result: 20M events of a
        million members cost a million HMACs, not twenty."""
        distinct = frame.get_column(column).cast(pl.Utf8).unique().drop_nulls()
        hashed = pl.Series(self.of_all(distinct.to_list()), dtype=pl.Utf8)
        return frame.with_columns(
            pl.col(column).cast(pl.Utf8).replace_strict(distinct, hashed, return_dtype=pl.Utf8)
        )

    def mapping(self, member_ids: Iterable[str]) -> pl.DataFrame:
        """``member_id`` and :data:`PSEUDONYM` of each id: the retailer's way back from the
        pseudonyms of an export to their members (it never leaves the retailer)."""
        ids = list(member_ids)
        schema = {MEMBER_ID: pl.Utf8, PSEUDONYM: pl.Utf8}
        return pl.DataFrame({MEMBER_ID: ids, PSEUDONYM: self.of_all(ids)}, schema=schema)


def key_mismatch(recorded: str | None, key_fingerprint: str | None) -> str | None:
    """Why member ids of a model artifact whose key fingerprint is ``recorded`` (None: raw ids)
    cannot be matched by a reader holding the key of ``key_fingerprint`` (None: no key); None
    when they can. The readers (serving, exports) raise their own error with it."""
    if recorded == key_fingerprint:
        return None
    if key_fingerprint is None:
        return (
            f"its member ids are pseudonyms (key fingerprint {recorded}) but {KEY_VARIABLE} is "
            "not set: set it to the key the artifact was trained with, or raw ids would match "
            "no member"
        )
    if recorded is None:
        return (
            f"its member ids are raw but {KEY_VARIABLE} is set: raw and pseudonymised ids would "
            f"be mixed; unset {KEY_VARIABLE}, or retrain with recsys train --pseudonymise-members"
        )
    return (
        f"its member ids are pseudonyms of another key (fingerprint {recorded}; the key in "
        f"{KEY_VARIABLE} has {key_fingerprint}): set the key it was trained with, or retrain "
        "with this one"
    )
