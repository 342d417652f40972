"""The bundle routes of DESIGN section 5 against a real server (uvicorn subprocess, tiny model
artifact): complements of an item or a cart from the association rules, and members' bundles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from serving.schemas import BundleResponse, MemberBundlesResponse
from tests.serving_helpers import Server, an_event, post_events, serve_tiny


@pytest.fixture(scope="module")
def server(
    tiny_trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = serve_tiny(tiny_trained[1], tmp_path_factory.mktemp("bundles"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def rules(tiny_trained: tuple[Path, Path]) -> pl.DataFrame:
    table = pl.read_parquet(tiny_trained[1] / "rules.parquet")
    assert table.height > 0, "the tiny store plants bundles: training must find rules"
    return table


def test_item_bundles_come_from_the_rules_with_their_measures(
    server: Server, rules: pl.DataFrame
) -> None:
    single = rules.filter(pl.col("antecedents").list.len() == 1)
    anchor = single["antecedents"][0][0]
    expected = single.filter(pl.col("antecedents").list.first() == anchor).sort(
        "lift", descending=True
    )
    response = server.client.get(f"/v1/items/{anchor}/bundles?n=3")
    assert response.status_code == 200, response.text
    body = BundleResponse.model_validate_json(response.content, strict=True)
    assert body.cart == [anchor] and len(body.items) == 3
    first = body.items[0]
    assert (first.source, first.item_id) == ("rules", expected["consequent"][0])
    assert first.lift == pytest.approx(expected["lift"][0])
    assert first.confidence == pytest.approx(expected["confidence"][0])
    assert anchor not in {item.item_id for item in body.items}
    assert len({item.item_id for item in body.items}) == 3


def test_a_cart_never_gets_its_own_items_back(
    server: Server, rules: pl.DataFrame, catalog: pl.DataFrame
) -> None:
    cart = list({*rules["antecedents"][0], rules["consequent"][0]})
    response = server.client.post("/v1/bundles", json={"item_ids": cart, "n": 6})
    assert response.status_code == 200, response.text
    body = BundleResponse.model_validate_json(response.content, strict=True)
    proposed = [item.item_id for item in body.items]
    assert 0 < len(proposed) == len(set(proposed)) <= 6
    assert not set(cart) & set(proposed)
    sources = [item.source for item in body.items]
    assert sources == sorted(sources, key=lambda source: source != "rules")  # rules first
    assert body.fallback == ("similar" in sources)
    # Stand-ins come from the first cart item's category (the tiny catalog has ~4 per category).
    category = catalog.filter(pl.col("item_id") == cart[0])["category"][0]
    assert all(item.category == category for item in body.items if item.source == "similar")


def test_member_bundles_drop_a_complement_bought_just_now(
    server: Server, tiny_trained: tuple[Path, Path], catalog: pl.DataFrame
) -> None:
    repeatable = set(catalog.filter(pl.col("repeatable")).get_column("item_id"))
    interactions = pl.read_parquet(tiny_trained[0] / "interactions.parquet")
    for member in interactions.get_column("member_id").unique(maintain_order=True)[20:80]:
        before = server.client.get(f"/v1/members/{member}/bundles?n=3").json()
        proposed = [
            bundle["items"][1]["item_id"]
            for bundle in before["bundles"]
            if bundle["items"][1]["source"] == "rules"
            and bundle["items"][1]["item_id"] not in repeatable
        ]
        if proposed:
            break
    else:
        pytest.fail("no member of the tiny store is offered a rule complement")
    post_events(server, an_event("purchase", member, proposed[0]))
    after = server.client.get(f"/v1/members/{member}/bundles?n=3").json()
    offered = {item["item_id"] for bundle in after["bundles"] for item in bundle["items"]}
    assert proposed[0] not in offered and after["bundles"]


def test_bundle_errors_are_json_4xx(server: Server) -> None:
    assert server.client.get("/v1/items/no-such-item/bundles").status_code == 404
    missing = server.client.post("/v1/bundles", json={"item_ids": ["no-such-item"]})
    assert missing.status_code == 404 and "no-such-item" in missing.json()["error"]["message"]
    assert server.client.post("/v1/bundles", json={"item_ids": []}).status_code == 422
    assert server.client.get("/v1/items/x/bundles?n=0").status_code == 422


def test_member_bundles_pair_recommendations_with_complements(
    server: Server, known_member: str, tiny_trained: tuple[Path, Path]
) -> None:
    response = server.client.get(f"/v1/members/{known_member}/bundles?n=4")
    assert response.status_code == 200, response.text
    body = MemberBundlesResponse.model_validate_json(response.content, strict=True)
    assert body.member_id == known_member and 0 < len(body.bundles) <= 4
    items = [item.item_id for bundle in body.bundles for item in bundle.items]
    assert len(items) == len(set(items))  # no item twice
    bought = set(
        pl.read_parquet(tiny_trained[0] / "interactions.parquet")
        .filter((pl.col("member_id") == known_member) & (pl.col("event") == "purchase"))
        .get_column("item_id")
    )
    repeatable = set(
        pl.read_parquet(tiny_trained[0] / "items.parquet")
        .filter(pl.col("repeatable"))
        .get_column("item_id")
    )
    assert not (bought - repeatable) & set(items)  # bought again only when repeatable
    scores = [bundle.score for bundle in body.bundles]
    assert scores == sorted(scores, reverse=True)
    prices = dict(
        pl.read_parquet(tiny_trained[0] / "items.parquet").select("item_id", "price").iter_rows()
    )
    for bundle in body.bundles:
        anchor, complement, *third = bundle.items
        assert anchor.source == "recommended" and complement.source in {"rules", "similar"}
        if complement.source == "rules":
            assert complement.lift is not None and complement.antecedents == [anchor.item_id]
        for extra in third:  # a rule with the pair as antecedents proposes it
            assert extra.source == "rules" and extra.lift is not None
            assert extra.antecedents == sorted([anchor.item_id, complement.item_id])
        assert bundle.total_price == pytest.approx(sum(prices[i.item_id] for i in bundle.items))
    for stranger in ("nobody-yet", "0"):  # "0": a cold start whose anchors have no stand-in
        cold = server.client.get(f"/v1/members/{stranger}/bundles")
        assert cold.status_code == 200, cold.text
        MemberBundlesResponse.model_validate_json(cold.content, strict=True)
