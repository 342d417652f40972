"""API keys with roles: who may read, post events, or administer.

Keys come from settings (``RECSYS_API_KEYS``). A presented key is compared with every
configured key in constant time (``hmac.compare_digest``, no early exit), so that neither
the match nor its position leaks through timing. Write and admin routes always need a key;
read routes only when ``RECSYS_REQUIRE_READ_KEY`` is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from serving.errors import ForbiddenError, UnauthorizedError
from serving.settings import Role

__all__ = ["API_KEY_HEADER", "KEYS_HINT", "KeyRing"]

API_KEY_HEADER = "X-API-Key"

#: Where keys come from, said in every 401: a newcomer's first POST fails without one.
KEYS_HINT = (
    "keys are set on the server in RECSYS_API_KEYS, a JSON object of key to roles, e.g. "
    '{"my-key": ["events"]}; `make demo` prints a demo key'
)


class KeyRing:
    """The configured keys and the roles each grants (``admin`` grants every role)."""

    def __init__(self, keys: Mapping[str, Iterable[Role]]) -> None:
        self._keys = [
            (key.encode(), frozenset(Role) if Role.ADMIN in roles else frozenset(roles))
            for key, roles in keys.items()
        ]

    def roles_of(self, presented: str) -> frozenset[Role]:
        """The roles of ``presented``; empty for an unknown key. Every key is compared."""
        candidate = presented.encode("utf-8", "surrogateescape")
        granted: frozenset[Role] = frozenset()
        for key, roles in self._keys:
            if hmac.compare_digest(candidate, key):
                granted = roles
        return granted

    def check(self, presented: str | None, role: Role) -> None:
        """Raise 401 without a valid key, 403 when the key lacks ``role``."""
        if not presented:
            raise UnauthorizedError(
                f"this route needs an API key with the {role} role in {API_KEY_HEADER} "
                f"({KEYS_HINT})"
            )
        roles = self.roles_of(presented)
        if not roles:
            raise UnauthorizedError(f"the key in {API_KEY_HEADER} is not valid ({KEYS_HINT})")
        if role not in roles:
            raise ForbiddenError(f"the key in {API_KEY_HEADER} lacks the {role} role")
