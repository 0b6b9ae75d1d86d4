"""The idempotency window: what the command processor writes to its table, per command.

Decided against the real schema registry; the table is a dict, as the agent's
writes would leave it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from aggregates.shop import domain as shop
from core.errors import InputRejectedError
from processors.command_processing import AggregateRecord, CommandProcessor, Outcome, apply_writes
from processors.messages import MessageTypes
from processors.replay import rebuild
from processors.table_keys import aggregate_id, parse, record_key, result_key
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde
from tests.integration.event_log import ADDRESS

WINDOW = 3

SHOP_TYPES = MessageTypes(shop)


@pytest.fixture
def serde(registry: RegistryClient, catalog: SchemaCatalog) -> AvroSerde:
    return AvroSerde(registry, catalog)


@pytest.fixture
def topics(unique_name: Callable[[str], str]) -> dict[str, str]:
    prefix = unique_name("window")
    return {name: f"{prefix}-{name}" for name in ("commands", "events", "command-results")}


class Processing:
    """Commands decided one after another against one table, as one worker would."""

    def __init__(self, serde: AvroSerde, topics: dict[str, str]) -> None:
        self.serde, self.topics = serde, topics
        self.processor = CommandProcessor(serde, SHOP_TYPES, topics, dedup_window=WINDOW)
        self.table: dict[bytes, bytes] = {}
        self.results: list[bytes] = []  # every result sent, in order

    def send(self, command_id: str, sku: str, name: str, payload: dict[str, Any]) -> Outcome:
        metadata = {
            "command_id": command_id,
            "aggregate_id": sku,
            "issued_at": time.time_ns() // 1_000_000,
        }
        value = self.serde.encode(
            self.topics["commands"], f"cqrs.commands.{name}", {"metadata": metadata, **payload}
        )
        outcome = self.processor.process(self.processor.read(value), self.table.get)
        apply_writes(self.table, outcome.writes)
        self.results.append(outcome.result)
        return outcome

    def entries_of(self, sku: str) -> dict[str, bytes]:
        return {
            key.decode(): value
            for key, value in self.table.items()
            if aggregate_id(key.decode()) == sku
        }


@pytest.fixture
def processing(serde: AvroSerde, topics: dict[str, str]) -> Processing:
    return Processing(serde, topics)


def _restock(processing: Processing, command_id: str, sku: str) -> Outcome:
    return processing.send(command_id, sku, "AdjustStock", {"delta": 1, "reason": "RESTOCK"})


def test_a_repeat_gets_the_original_result_bytes_and_writes_nothing(
    processing: Processing,
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    first = processing.send("c-1", sku, "RegisterItem", {"name": "Teapot"})
    before = dict(processing.table)

    repeated = processing.send("c-1", sku, "RegisterItem", {"name": "Teapot"})

    assert first.status == "accepted" and len(first.events) == 1
    assert repeated.status == "repeated"
    assert repeated.result == first.result
    assert repeated.events == [] and repeated.writes == []
    assert processing.table == before


def test_the_window_keeps_the_last_results_in_a_constant_number_of_entries(
    processing: Processing,
) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    processing.send("c-0", sku, "RegisterItem", {"name": "Teapot"})
    for number in range(1, 10):
        outcome = _restock(processing, f"c-{number}", sku)
        # Each command writes its record, its result and its slot, and deletes one result
        # once the window is full: the same few small writes however long the history.
        assert len(outcome.writes) == (4 if number >= WINDOW else 3)

    entries = processing.entries_of(sku)
    remembered = {parse(key).detail for key in entries if parse(key).entry == "~result"}
    record = AggregateRecord.from_bytes(
        entries[record_key("InventoryItem", sku).decode()], SHOP_TYPES.kinds
    )
    # The newest result rides in the record; the older ones of the window are entries.
    assert remembered == {"c-7", "c-8"}
    assert record.last is not None and record.last[0] == "c-9"
    assert len(entries) == 1 + 2 * (WINDOW - 1)
    assert (record.version, record.decided) == (10, 10)
    # Forgotten: a command id that left the window is decided anew.
    assert _restock(processing, "c-0", sku).status == "accepted"
    assert _restock(processing, "c-9", sku).status == "repeated"


def test_rejections_are_remembered_like_acceptances(processing: Processing) -> None:
    sku = f"sku-{uuid.uuid4().hex[:6]}"
    processing.send("c-1", sku, "RegisterItem", {"name": "Teapot"})
    refused = processing.send("c-2", sku, "ReserveStock", {"order_id": "o-1", "quantity": 5})

    again = processing.send("c-2", sku, "ReserveStock", {"order_id": "o-1", "quantity": 5})

    assert refused.status == "accepted"  # the item answers with StockReservationRejected
    assert again.status == "repeated" and again.result == refused.result
    late = processing.send("c-3", sku, "RegisterItem", {"name": "Teapot"})
    assert late.status == "rejected"
    assert processing.send("c-3", sku, "RegisterItem", {"name": "x"}).result == late.result
    stored = processing.table[record_key("InventoryItem", sku)]
    assert AggregateRecord.from_bytes(stored, SHOP_TYPES.kinds).last == ("c-3", late.result)
    assert result_key(record_key("InventoryItem", sku), "c-2") in processing.table


def test_the_table_rebuilt_from_events_and_results_is_the_live_table(
    processing: Processing, serde: AvroSerde
) -> None:
    skus = [f"sku-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    events: list[bytes] = []
    for sku in skus:
        events += [
            value
            for _, value in processing.send(f"{sku}-r", sku, "RegisterItem", {"name": sku}).events
        ]
    for number in range(7):
        sku = skus[number % 2]
        time.sleep(0.002)  # distinct processed_at: the log's only order across partitions
        events += [value for _, value in _restock(processing, f"{sku}-{number}", sku).events]
    _restock(processing, f"{skus[0]}-6", skus[0])  # a repeat: its result is sent again

    rebuilt = rebuild(
        SHOP_TYPES,
        (serde.decode(value) for value in events),
        [(serde.decode(value), value) for value in processing.results],
        WINDOW,
    )

    assert {key: entry.value for key, entry in rebuilt.items()} == {
        key.decode(): value for key, value in processing.table.items()
    }


def test_an_event_its_schema_cannot_carry_is_refused_as_bad_input(
    processing: Processing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The domain's limits keep this from happening. Should they fall short, the command is
    answered and dead-lettered: raised as bad input, nothing written, nothing emitted,
    instead of crashing the worker on the same record after every restart."""
    monkeypatch.setattr("aggregates.order.MAX_CENTS", 2**70)  # a limit that falls short
    order_id = f"o-{uuid.uuid4().hex[:6]}"
    line = {"sku": "s", "quantity": 2, "unit_price_cents": 2**62}  # total 2**63: no Avro long

    with pytest.raises(InputRejectedError) as raised:
        processing.send(
            "c-1",
            order_id,
            "PlaceOrder",
            {"customer_id": "c", "shipping_address": ADDRESS, "lines": [line]},
        )

    error = raised.value
    assert (error.code, error.command_id, error.aggregate_id) == (
        "EVENT_NOT_ENCODABLE",
        "c-1",
        order_id,
    )
    assert "cqrs.events.OrderPlaced" in error.reason
    answer = processing.processor.rejection_for(error)
    assert answer is not None and answer[0] == b"c-1"
    assert processing.serde.decode(answer[1]).value["rejection"]["code"] == "EVENT_NOT_ENCODABLE"
    assert processing.table == {}
