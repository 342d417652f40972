"""``GET /v1/members/{id}/offers`` against a real server of the tiny model artifact, with sends
recorded in its own SQLite event store through the real ``EventStore`` ledger: the latest
campaign's offer, holdouts and members without an offer told why, unknown members a 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.event_store import EventStore
from serving.schemas.offers import MemberOffers
from tests.serving_helpers import Server, serve_tiny
from training.campaigns.ledger import CampaignGroup, CampaignSend

SENT_AT = 1_780_000_000.0


@pytest.fixture(scope="module")
def served(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, EventStore]]:
    root = tmp_path_factory.mktemp("offers-api")
    server = serve_tiny(tiny_trained[1], root)
    ledger = EventStore.open(f"sqlite:///{root / 'events.db'}")
    yield server, ledger
    ledger.close()
    server.stop()


def _send(
    member: str, campaign: str, group: CampaignGroup, offer: str | None, at: float
) -> CampaignSend:
    return CampaignSend(campaign, "winback", member, group, ("I1", "I2"), offer, at)


def _offers_of(server: Server, member: str) -> MemberOffers:
    response = server.client.get(f"/v1/members/{member}/offers")
    assert response.status_code == 200, response.text
    return MemberOffers.model_validate(response.json())


def test_the_latest_campaigns_offer_is_answered(
    served: tuple[Server, EventStore], known_member: str
) -> None:
    server, ledger = served
    ledger.record([_send("OFFERED", "c-1", "treatment", "OLD", SENT_AT)])
    ledger.record([_send("OFFERED", "c-2", "treatment", "TEN-OFF", SENT_AT + 86_400)])
    body = _offers_of(server, "OFFERED")
    assert body.offer is not None and body.offer.offer_id == "TEN-OFF" and body.note is None
    assert body.campaign is not None and body.campaign.campaign_id == "c-2"
    assert body.campaign.group == "treatment" and body.campaign.items == ["I1", "I2"]
    assert body.campaign.sent_at.timestamp() == SENT_AT + 86_400


def test_a_holdout_or_a_send_without_offer_has_no_offer_and_says_why(
    served: tuple[Server, EventStore],
) -> None:
    server, ledger = served
    ledger.record(
        [
            _send("HELD", "c-3", "holdout", None, SENT_AT),
            _send("PLAIN", "c-3", "treatment", None, SENT_AT),
        ]
    )
    held = _offers_of(server, "HELD")
    assert held.offer is None and held.campaign is not None and held.campaign.group == "holdout"
    assert held.note is not None and "held out of campaign 'c-3'" in held.note
    plain = _offers_of(server, "PLAIN")
    assert plain.offer is None and plain.note == "campaign 'c-3' gave this member no offer"


def test_the_offer_and_its_absence_carry_the_reason_the_campaign_recorded(
    served: tuple[Server, EventStore],
) -> None:
    server, ledger = served
    chosen = "chosen: best of 2 offer(s) worth giving"
    spent = "budget spent: TEN-OFF"
    ledger.record([
        CampaignSend("c-4", "winback", "WHY", "treatment", ("I1",), "GIFT", SENT_AT, chosen),
        CampaignSend("c-4", "winback", "WHYNOT", "treatment", ("I1",), None, SENT_AT, spent),
    ])  # fmt: skip
    given = _offers_of(server, "WHY")
    assert given.offer is not None
    assert (given.offer.offer_id, given.offer.reason) == ("GIFT", chosen)
    refused = _offers_of(server, "WHYNOT")
    assert refused.offer is None
    assert refused.note == f"campaign 'c-4' gave this member no offer ({spent})"


def test_a_known_member_without_campaigns_gets_no_offer_and_a_stranger_a_404(
    served: tuple[Server, EventStore], known_member: str
) -> None:
    server, _ = served
    body = _offers_of(server, known_member)
    assert body.campaign is None and body.offer is None
    assert body.note == "no campaign has included this member yet"
    missing = server.client.get("/v1/members/NOBODY-AT-ALL/offers")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "not_found"
    assert "unknown member 'NOBODY-AT-ALL'" in missing.json()["error"]["message"]
