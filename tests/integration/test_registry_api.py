"""The embedded registry over HTTP: Confluent's API, codes and clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from schemas.tooling import check_all, register_all

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ORDER_PLACED = "cqrs.events.OrderPlaced"


def order_placed() -> dict[str, Any]:
    return {
        "metadata": {
            "event_id": "e-1",
            "aggregate_type": "Order",
            "aggregate_id": "o-1",
            "sequence": 1,
            "command_id": "c-1",
            "correlation_id": "c-1",
            "causation_id": "c-1",
            "occurred_at": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
            "recorded_at": datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC),
        },
        "customer_id": "cust-1",
        "lines": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}],
        "shipping_address": {
            "name": "Ada",
            "street": "1 Loop",
            "city": "Paris",
            "postal_code": "75001",
            "country": "FR",
        },
        "currency": "EUR",
        "total_cents": 2500,
    }


@pytest.fixture
def http(local_stack: Settings) -> httpx.Client:
    return httpx.Client(base_url=local_stack.registry.url, timeout=10)


@pytest.fixture
def confluent_client(local_stack: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": local_stack.registry.url})


def test_bytes_from_confluents_serializer_are_read_by_ours(
    local_stack: Settings,
    confluent_client: SchemaRegistryClient,
    registry: RegistryClient,
    catalog: SchemaCatalog,
    unique_name: Callable[[str], str],
) -> None:
    topic = unique_name("interop")
    serializer = AvroSerializer(
        confluent_client,
        catalog.canonical_text(ORDER_PLACED),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    data = serializer(order_placed(), SerializationContext(topic, MessageField.VALUE))
    assert data is not None

    decoded = AvroSerde(registry, catalog, auto_register=False).decode(data)

    assert decoded.full_name == ORDER_PLACED
    assert decoded.value == order_placed()
    assert confluent_client.get_latest_version(f"{topic}-{ORDER_PLACED}").version == 1


def test_bytes_from_our_serde_are_read_by_confluents_deserializer(
    confluent_client: SchemaRegistryClient,
    registry: RegistryClient,
    catalog: SchemaCatalog,
    unique_name: Callable[[str], str],
) -> None:
    topic = unique_name("interop")
    data = AvroSerde(registry, catalog).encode(topic, ORDER_PLACED, order_placed())

    value = AvroDeserializer(confluent_client)(
        data, SerializationContext(topic, MessageField.VALUE)
    )

    assert value == order_placed()
    registered = confluent_client.lookup_schema(
        f"{topic}-{ORDER_PLACED}",
        confluent_client.get_latest_version(f"{topic}-{ORDER_PLACED}").schema,
    )
    assert registered.schema_id == int.from_bytes(data[1:5], "big")


def test_registering_is_idempotent_and_lookup_finds_the_version(
    http: httpx.Client, unique_name: Callable[[str], str], catalog: SchemaCatalog
) -> None:
    subject = unique_name("idem")
    body = {"schema": catalog.canonical_text(ORDER_PLACED)}
    first = http.post(f"/subjects/{subject}/versions", json=body)
    second = http.post(f"/subjects/{subject}/versions", json=body)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"].startswith(CONTENT_TYPE)
    assert first.json() == second.json()
    found = http.post(f"/subjects/{subject}", json=body).json()
    assert (found["subject"], found["version"], found["id"]) == (subject, 1, first.json()["id"])
    assert http.get(f"/subjects/{subject}/versions").json() == [1]
    assert (
        json.loads(http.get(f"/schemas/ids/{found['id']}").json()["schema"])["name"] == ORDER_PLACED
    )


def test_malformed_schema_is_422_with_confluents_code(
    http: httpx.Client, unique_name: Callable[[str], str]
) -> None:
    response = http.post(
        f"/subjects/{unique_name('bad')}/versions", json={"schema": '{"type": "rec'}
    )
    assert response.status_code == 422
    assert response.json()["error_code"] == 42201
    assert "not valid JSON" in response.json()["message"]
    response = http.post(
        f"/subjects/{unique_name('bad')}/versions",
        json={"schema": '{"type": "record", "name": "X", "fields": [{"name": "a"}]}'},
    )
    assert (response.status_code, response.json()["error_code"]) == (422, 42201)


def test_unknown_subject_version_and_id_are_404_with_their_codes(
    http: httpx.Client, unique_name: Callable[[str], str], catalog: SchemaCatalog
) -> None:
    subject = unique_name("known")
    http.post(
        f"/subjects/{subject}/versions", json={"schema": catalog.canonical_text(ORDER_PLACED)}
    )
    for path, code in [
        (f"/subjects/{unique_name('unknown')}/versions", 40401),
        (f"/subjects/{subject}/versions/42", 40402),
        ("/schemas/ids/987654321", 40403),
    ]:
        response = http.get(path)
        assert (response.status_code, response.json()["error_code"]) == (404, code), path


def test_incompatible_registration_is_409_and_the_test_endpoint_explains(
    http: httpx.Client, unique_name: Callable[[str], str]
) -> None:
    subject = unique_name("compat")
    v1 = {"type": "record", "name": "E", "fields": [{"name": "a", "type": "string"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "b", "type": "int"}]}
    assert http.put(f"/config/{subject}", json={"compatibility": "BACKWARD_TRANSITIVE"}).json() == {
        "compatibility": "BACKWARD_TRANSITIVE"
    }
    assert (
        http.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(v1)}).status_code
        == 200
    )

    rejected = http.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(v2)})
    verdict = http.post(
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
        json={"schema": json.dumps(v2)},
    ).json()

    assert (rejected.status_code, rejected.json()["error_code"]) == (409, 409)
    assert verdict["is_compatible"] is False
    assert any("b" in message for message in verdict["messages"])
    assert http.get(f"/config/{subject}").json() == {"compatibilityLevel": "BACKWARD_TRANSITIVE"}


def test_soft_and_permanent_delete_over_http(
    http: httpx.Client, unique_name: Callable[[str], str], catalog: SchemaCatalog
) -> None:
    subject = unique_name("delete")
    schema_id = http.post(
        f"/subjects/{subject}/versions", json={"schema": catalog.canonical_text(ORDER_PLACED)}
    ).json()["id"]
    assert http.delete(f"/subjects/{subject}?permanent=true").json()["error_code"] == 40405
    assert http.delete(f"/subjects/{subject}").json() == [1]
    assert subject not in http.get("/subjects").json()
    assert subject in http.get("/subjects?deleted=true").json()
    assert http.get(f"/schemas/ids/{schema_id}").status_code == 200
    assert http.delete(f"/subjects/{subject}?permanent=true").json() == [1]
    assert subject not in http.get("/subjects?deleted=true").json()


def test_schemas_check_fails_with_a_readable_diff_on_a_breaking_change(
    local_stack: Settings,
    unique_name: Callable[[str], str],
    evolved_catalog: Callable[..., SchemaCatalog],
) -> None:
    prefix = unique_name("chk") + "-"
    settings = local_stack.model_copy(
        update={"kafka": local_stack.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    registered = list(register_all(settings))
    assert any("BACKWARD_TRANSITIVE" in line for line in registered)

    def add_required_field(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "discount_cents", "type": "long", "doc": "Discount."})

    lines: list[str] = []
    failures = check_all(
        settings, lines.append, evolved_catalog("cqrs.events.OrderPlaced", add_required_field)
    )
    output = "\n".join(lines)

    assert failures == 1
    assert f"BREAKING {prefix}events-cqrs.events.OrderPlaced" in output
    assert "discount_cents" in output
    assert '+      "name": "discount_cents"' in output
    assert failures == sum(line.startswith("BREAKING") for line in lines)

    assert check_all(settings, lines.append) == 0
