"""Member ids of requests replaced by their pseudonyms, when the server has the retailer's key.

With ``RECSYS_MEMBER_ID_KEY`` set (:mod:`features.pseudonyms`), the model artifact and the event
store know members only by pseudonyms, while the storefront keeps sending its own ids. Every
member id a request carries is replaced once, at the edge, before anything reads it:

* in the path, ``/v1/members/{member_id}/...`` (every member route, the storefront's fast lane
  included): :class:`MemberPathPseudonyms` rewrites the request's path in place, so that the
  routes, the fast lane, the metrics (by route template) and the access log see only the
  pseudonym, and a member route added later is covered without a line of its own;
* in a body (``POST /v1/events``, ``POST /v1/recommendations/batch``): those routes replace the
  ids of the parsed body (:func:`with_pseudonyms` for events), given the key by
  :data:`serving.deps.PseudonymsDep`.

Responses name members by their pseudonyms, the only ids the server holds. An id that already
is a pseudonym is kept, so that the dashboard, which lists members by pseudonym, can ask for
them. A model artifact whose ids do not match the key is refused at load
(:class:`serving.model_store.ModelStore`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from features.pseudonyms import MemberPseudonyms
from serving.schemas import EventIn, ExternalId

__all__ = ["MemberPathPseudonyms", "pseudonyms_of", "with_pseudonyms"]

_MEMBER_PATH: Final = re.compile(r"/v1/members/([^/]+)(/.*)?")
_PREFIX: Final = b"/v1/members/"
_MEMBER_ID: Final = TypeAdapter(ExternalId)


def pseudonyms_of(state: object) -> MemberPseudonyms | None:
    """The application's pseudonyms (None: ids are served raw, or the app is not started)."""
    return getattr(state, "pseudonyms", None)


def with_pseudonyms(
    events: Sequence[EventIn], pseudonyms: MemberPseudonyms | None
) -> Sequence[EventIn]:
    """``events`` with their member ids replaced by pseudonyms (as they are without a key)."""
    if pseudonyms is None:
        return events
    return [
        event.model_copy(update={"member_id": pseudonyms.of(event.member_id)}) for event in events
    ]


class MemberPathPseudonyms:
    """Replaces the member id of ``/v1/members/{member_id}/...`` paths by its pseudonym.

    It sits inside the request guard, which judges the path as the client sent it (bytes that
    are not UTF-8), and outside the fast lane. An id that is not valid (too long, control
    characters) is left for the route to refuse with its usual 422.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            pseudonyms = pseudonyms_of(scope["app"].state)
            if pseudonyms is not None:
                _replace_member(scope, pseudonyms)
        await self.app(scope, receive, send)


def _replace_member(scope: Scope, pseudonyms: MemberPseudonyms) -> None:
    """Rewrite ``scope``'s path and raw path in place (the outer middleware read the route
    FastAPI sets on this same scope)."""
    matched = _MEMBER_PATH.fullmatch(scope["path"])
    if matched is None:
        return
    try:
        member_id = _MEMBER_ID.validate_python(matched.group(1))
    except ValidationError:
        return
    pseudonym = pseudonyms.of(member_id)
    scope["path"] = f"/v1/members/{pseudonym}{matched.group(2) or ''}"
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is not None and raw_path.startswith(_PREFIX):
        _, slash, rest = raw_path[len(_PREFIX) :].partition(b"/")
        scope["raw_path"] = _PREFIX + pseudonym.encode() + slash + rest
