"""The query service (``cqrs query serve``) against the real stack.

The real worker decides commands, the real sinks project them into PostgreSQL
and OpenSearch, and the real query service answers over HTTP: reads by id,
lists with filters and keyset pages, search, ``min_version`` waits and their
timeout, consistency tokens, the command gateway's accepted, rejected and
repeated commands, API keys and scopes, and malformed input (a 4xx problem
document, never a 500).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.integration.pipeline import wait_until
from tests.integration.query_support import (
    ADDRESS,
    ADMIN_KEY,
    COMMAND_KEY,
    PROBLEM,
    READ_KEY,
    api,
    pipeline,
    sinks,
)

__all__ = ["api", "pipeline", "sinks"]  # module fixtures, one set per test module


def as_reader() -> dict[str, str]:
    return {"Authorization": f"Bearer {READ_KEY}"}


def as_writer() -> dict[str, str]:
    return {"X-API-Key": COMMAND_KEY}


def command(
    api: httpx.Client, kind: str, aggregate_id: str, payload: dict[str, Any], **extra: Any
) -> httpx.Response:
    headers = {**as_writer(), **extra.pop("headers", {})}
    return api.post(
        f"/commands/{kind}",
        json={"aggregate_id": aggregate_id, "payload": payload, **extra},
        headers=headers,
    )


def place_order(
    api: httpx.Client, order_id: str, customer: str, sku: str, quantity: int
) -> httpx.Response:
    return command(
        api,
        "PlaceOrder",
        order_id,
        {
            "customer_id": customer,
            "shipping_address": ADDRESS,
            "lines": [{"sku": sku, "quantity": quantity, "unit_price_cents": 250}],
        },
    )


def test_gateway_answers_with_the_result_and_reads_follow_its_token(api: httpx.Client) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    registered = command(api, "RegisterItem", sku, {"name": "Mug"})
    assert registered.status_code == 200, registered.text
    body = registered.json()
    assert body["status"] == "ACCEPTED" and body["version"] == 1 and len(body["event_ids"]) == 1
    token = body["consistency_token"]
    assert registered.headers["X-Consistency-Token"] == token

    # The token makes the read wait until the sink has read the command's events.
    view = api.get(
        f"/projections/inventory-levels/{sku}",
        headers={**as_reader(), "X-Consistency-Token": token},
        params={"timeout": "20"},
    )
    assert view.status_code == 200, view.text
    assert view.json()["name"] == "Mug" and view.json()["version"] == 1

    adjusted = command(api, "AdjustStock", sku, {"delta": 7, "reason": "RESTOCK"})
    assert adjusted.json()["version"] == 2
    waited = api.get(
        f"/projections/inventory-levels/{sku}",
        params={"min_version": "2", "timeout": "20"},
        headers=as_reader(),
    )
    assert waited.status_code == 200
    assert (waited.json()["on_hand"], waited.json()["version"]) == (7, 2)


def test_min_version_times_out_with_the_current_version(api: httpx.Client) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    assert command(api, "RegisterItem", sku, {"name": "Cup"}).status_code == 200
    answer = api.get(
        f"/projections/inventory-levels/{sku}",
        params={"min_version": "5", "timeout": "1.5"},
        headers=as_reader(),
    )
    assert answer.status_code == 504
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["status"] == 504 and problem["current_version"] == 1
    assert problem["lag"]["partition"] >= 0


def test_rejections_and_repeats(api: httpx.Client) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    key = str(uuid.uuid4())
    first = command(api, "RegisterItem", sku, {"name": "Plate"}, headers={"Idempotency-Key": key})
    again = command(api, "RegisterItem", sku, {"name": "Plate"}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json()["command_id"] == key == first.json()["command_id"]
    assert again.json()["event_ids"] == first.json()["event_ids"]

    twice = command(api, "RegisterItem", sku, {"name": "Plate"})
    assert twice.status_code == 409, twice.text
    assert twice.headers["content-type"] == PROBLEM and twice.json()["code"]

    stale = command(api, "AdjustStock", sku, {"delta": 1, "reason": "RESTOCK"}, expected_version=7)
    assert stale.status_code == 409
    assert (stale.json()["code"], stale.json()["current_version"]) == ("VERSION_CONFLICT", 1)

    pending = api.post(
        "/commands/AdjustStock",
        params={"wait": "false"},
        json={"aggregate_id": sku, "payload": {"delta": 2, "reason": "RESTOCK"}},
        headers=as_writer(),
    )
    assert pending.status_code == 202
    location = pending.headers["Location"]

    def answered() -> httpx.Response | None:
        answer = api.get(location, headers=as_writer())
        return answer if answer.status_code == 200 else None

    polled = wait_until(answered, 30, "the polled result")
    assert polled is not None and polled.json()["version"] == 2


def test_lists_filter_and_page_without_repeats(api: httpx.Client) -> None:
    customer = f"c-{uuid.uuid4().hex[:6]}"
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    command(api, "RegisterItem", sku, {"name": "Bowl"})
    orders = [f"o-{uuid.uuid4().hex[:6]}" for _ in range(7)]
    tokens = [
        place_order(api, order, customer, sku, n + 1).json() for n, order in enumerate(orders)
    ]
    assert all(answer["status"] == "ACCEPTED" for answer in tokens)
    seen: list[str] = []
    url: str | None = "/projections/order-summary"
    params: dict[str, str] | None = {
        "customer_id": customer,
        "order": "-total_cents",
        "limit": "3",
        "timeout": "20",
    }
    headers = {**as_reader(), "X-Consistency-Token": tokens[-1]["consistency_token"]}
    pages = 0
    while url is not None:
        page = api.get(url, params=params, headers=headers)
        assert page.status_code == 200, page.text
        seen += [item["order_id"] for item in page.json()["items"]]
        url, params, pages = page.json()["next"], None, pages + 1
    assert pages == 3
    assert seen == list(reversed(orders))  # the totals grow with n: descending is newest first
    big = api.get(
        "/projections/order-summary",
        params={"customer_id": customer, "total_cents__gte": "1000"},
        headers=as_reader(),
    ).json()["items"]
    assert sorted(item["order_id"] for item in big) == sorted(orders[3:])
    one = api.get(f"/projections/order-summary/{orders[0]}", headers=as_reader()).json()
    assert one["lines"][0]["sku"] == sku and one["status"] in ("PLACED", "CONFIRMED", "REJECTED")


def test_search_follows_the_token(api: httpx.Client) -> None:
    customer = f"c-{uuid.uuid4().hex[:6]}"
    order_id = f"o-{uuid.uuid4().hex[:6]}"
    placed = place_order(api, order_id, customer, f"sku-{uuid.uuid4().hex[:6]}", 2).json()
    found = api.get(
        "/search/search-orders",
        params={"customer_id": customer, "timeout": "20"},
        headers={**as_reader(), "X-Consistency-Token": placed["consistency_token"]},
    )
    assert found.status_code == 200, found.text
    assert [hit["order_id"] for hit in found.json()["items"]] == [order_id]
    assert found.json()["total"] == 1
    document = api.get(
        f"/projections/search-orders/{order_id}", params={"min_version": "1"}, headers=as_reader()
    )
    assert document.status_code == 200 and document.json()["customer_id"] == customer


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind"),
    [
        ("GET", "/projections/order-summary?limit=0", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary?nope=1", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary?total_cents=abc", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary?order=lines", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary?after=garbage", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary/x?min_version=-1", None, 422, "invalid-parameter"),
        ("GET", "/projections/order-summary/x?timeout=999", None, 422, "invalid-parameter"),
        ("GET", "/projections/nope/x", None, 404, "projection-not-found"),
        ("GET", "/projections/order-summary/no-such-order", None, 404, "view-not-found"),
        ("GET", "/search/search-orders?size=100000", None, 422, "invalid-parameter"),
        ("GET", "/search/order-summary", None, 400, "not-searchable"),
        ("GET", "/nowhere", None, 404, "not-found"),
        (
            "POST",
            "/commands/NoSuchCommand",
            {"aggregate_id": "a", "payload": {}},
            404,
            "command-not-found",
        ),
        ("POST", "/commands/RegisterItem", [1], 422, "invalid-parameter"),
        (
            "POST",
            "/commands/RegisterItem",
            {"aggregate_id": "", "payload": {}},
            422,
            "invalid-parameter",
        ),
        (
            "POST",
            "/commands/RegisterItem",
            {"aggregate_id": "a", "payload": {"nam": 1}},
            422,
            "invalid-parameter",
        ),
        (
            "POST",
            "/commands/RegisterItem",
            {"aggregate_id": "a", "payload": {"name": 5}},
            422,
            "invalid-parameter",
        ),
    ],
)
def test_malformed_requests_get_a_problem_never_a_500(
    api: httpx.Client, method: str, path: str, body: Any, status: int, kind: str
) -> None:
    answer = api.request(method, path, json=body, headers={"X-API-Key": ADMIN_KEY})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/" + kind) and answer.json()["detail"]


def test_keys_and_scopes(api: httpx.Client) -> None:
    assert api.get("/projections").status_code == 401
    assert api.get("/projections", headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 401
    assert api.get("/projections", headers=as_reader()).status_code == 200
    refused = command(api, "RegisterItem", "x", {"name": "n"}, headers={"X-API-Key": READ_KEY})
    assert refused.status_code == 403 and refused.json()["scope"] == "command"
    assert api.get("/livez").status_code == 200
    assert "cqrs_query_request_seconds" in api.get("/metrics").text


def test_openapi_describes_this_domain(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/commands/PlaceOrder" in spec["paths"]
    assert "/projections/order-summary/{id}" in spec["paths"]
    listing = spec["paths"]["/projections/order-summary"]["get"]
    assert "customer_id" in {parameter["name"] for parameter in listing["parameters"]}
    body = spec["paths"]["/commands/RegisterItem"]["post"]["requestBody"]
    payload = body["content"]["application/json"]["schema"]["properties"]["payload"]
    assert "name" in payload["properties"] and "metadata" not in payload["properties"]
    assert "<html" in api.get("/docs").text
