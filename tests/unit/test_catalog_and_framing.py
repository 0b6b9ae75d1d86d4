"""The local contracts load and are documented; the wire framing is strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest

from aggregates.shop import domain as shop
from core.errors import NotConfluentFramedError, SchemaCatalogError
from schemas.catalog import SchemaCatalog
from schemas.serde import frame, subject_for, unframe
from schemas.topics import domain_topic_specs


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.for_domain(shop)


def _fields(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "record":
            found += node["fields"]
        for value in node.values():
            found += _fields(value)
    elif isinstance(node, list):
        for value in node:
            found += _fields(value)
    return found


def test_every_contract_of_the_reference_domain_is_there(catalog: SchemaCatalog) -> None:
    expected = {
        "cqrs.commands.PlaceOrder",
        "cqrs.commands.ConfirmOrder",
        "cqrs.commands.RejectOrder",
        "cqrs.commands.CancelOrder",
        "cqrs.commands.ShipOrder",
        "cqrs.commands.RegisterItem",
        "cqrs.commands.AdjustStock",
        "cqrs.commands.ReserveStock",
        "cqrs.commands.ReleaseStock",
        "cqrs.events.OrderPlaced",
        "cqrs.events.OrderConfirmed",
        "cqrs.events.OrderRejected",
        "cqrs.events.OrderCancelled",
        "cqrs.events.OrderShipped",
        "cqrs.events.StockAdjusted",
        "cqrs.events.StockReserved",
        "cqrs.events.StockReservationRejected",
        "cqrs.events.StockReleased",
        "cqrs.envelope.CommandMetadata",
        "cqrs.envelope.EventMetadata",
        "cqrs.envelope.CommandResult",
        "cqrs.views.OrderSummary",
        "cqrs.views.InventoryLevel",
    }
    assert expected <= set(catalog)


def test_every_field_and_type_is_documented(catalog: SchemaCatalog) -> None:
    for name in catalog:
        definition = json.loads(catalog.path(name).read_text())
        assert definition.get("doc"), f"{name} has no doc"
        for field in _fields(definition):
            assert field.get("doc"), f"{name}.{field['name']} has no doc"


def test_self_contained_schemas_parse_with_apache_avro(catalog: SchemaCatalog) -> None:
    for name in catalog.records():
        parsed = avro.schema.parse(catalog.canonical_text(name))
        assert isinstance(parsed, avro.schema.RecordSchema)
        assert parsed.fullname == name


def test_every_topic_carries_records_and_every_message_has_a_topic(catalog: SchemaCatalog) -> None:
    routed = {record for spec in domain_topic_specs(shop) for record in spec.records(catalog)}
    # Only dead-letter topics, re-keyed copies of another topic and the JSON replay
    # records declare no records.
    assert all(spec.records(catalog) for spec in domain_topic_specs(shop) if spec.records_under)
    unrouted = {spec.name for spec in domain_topic_specs(shop) if not spec.records_under}
    assert unrouted == {"commands-dlq", "events-dlq", "fulfilment-inbox", "dead-letter-replays"}
    messages = set(catalog.records("cqrs.commands.")) | set(catalog.records("cqrs.events."))
    assert messages <= routed


def test_unknown_reference_is_a_catalog_error(tmp_path: Path) -> None:
    (tmp_path / "A.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "A",
                "namespace": "n",
                "doc": "d",
                "fields": [{"name": "b", "type": "n.Missing", "doc": "d"}],
            }
        )
    )
    with pytest.raises(SchemaCatalogError, match="unknown type"):
        SchemaCatalog(tmp_path)


def test_file_name_must_match_type_name(tmp_path: Path) -> None:
    (tmp_path / "Wrong.avsc").write_text(
        json.dumps({"type": "record", "name": "A", "namespace": "n", "fields": []})
    )
    with pytest.raises(SchemaCatalogError, match="file name"):
        SchemaCatalog(tmp_path)


def test_framing_round_trip_and_subject_strategy() -> None:
    assert unframe(frame(258, b"body")) == (258, b"body")
    assert frame(258, b"")[:5] == b"\x00\x00\x00\x01\x02"
    assert subject_for("events", "cqrs.events.OrderPlaced") == "events-cqrs.events.OrderPlaced"


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\x01\x00\x00\x00\x01body", b'{"json": 1}'])
def test_bytes_that_are_not_confluent_framed_are_rejected(data: bytes) -> None:
    with pytest.raises(NotConfluentFramedError, match="magic byte"):
        unframe(data)
