"""The domain declaration: what it accepts, what it refuses, and how it is named."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregates import inventory, order
from aggregates.shop import domain as shop
from core.errors import ConfigurationError, SchemaCatalogError
from core.settings import Settings
from cqrs import Aggregate, Domain, load_domain
from schemas.catalog import SchemaCatalog
from sinks import registry

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Counter:
    value: int = 0


@dataclass(frozen=True)
class Increment:
    by: int


@dataclass(frozen=True)
class Incremented:
    by: int


def _counter(name: str = "Counter") -> Aggregate[Counter]:
    return Aggregate(
        name,
        Counter(),
        lambda state, command: [Incremented(command.by)],
        lambda state, event: Counter(state.value + event.by),
        (Increment,),
        (Incremented,),
    )


def test_the_shop_names_its_records_under_its_namespace() -> None:
    assert shop.command_types["cqrs.commands.PlaceOrder"] == (order.AGGREGATE, order.PlaceOrder)
    assert shop.event_types["cqrs.events.StockAdjusted"] == (
        inventory.AGGREGATE,
        inventory.StockAdjusted,
    )
    assert shop.aggregate("InventoryItem") is inventory.AGGREGATE
    assert len(shop.command_types) == 10 and len(shop.event_types) == 11


def test_every_shop_command_and_event_has_a_schema() -> None:
    catalog = SchemaCatalog.for_domain(shop)
    assert set(shop.command_types) <= set(catalog.records("cqrs.commands."))
    assert set(shop.event_types) <= set(catalog.records("cqrs.events."))
    assert "cqrs.envelope.CommandResult" in catalog  # the pipeline's own, for every domain


def test_a_domain_with_its_own_namespace(tmp_path: Path) -> None:
    domain = Domain("counting", (_counter(),), tmp_path, namespace="acme")
    assert list(domain.command_types) == ["acme.commands.Increment"]
    assert list(domain.event_types) == ["acme.events.Incremented"]


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda p: Domain("d", (), p), "declares no aggregate"),
        (lambda p: Domain("d", (_counter(), _counter()), p), "aggregate names repeat"),
        (lambda p: Domain("d", (_counter("A"), _counter("B")), p), "same name"),
        (lambda p: _counter("not an identifier"), "must be an identifier"),
        (
            lambda p: Aggregate("A", Counter, lambda s, c: [], lambda s, e: s, (Increment,), ()),
            "initial must be a dataclass instance",
        ),
        (
            lambda p: Aggregate("A", Counter(), lambda s, c: [], lambda s, e: s, (int,), (int,)),
            "is not a dataclass",
        ),
    ],
)
def test_a_malformed_declaration_is_refused_with_its_reason(
    tmp_path: Path, build: object, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        build(tmp_path)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("aggregates.shop", "expected package.module:attribute"),
        ("no_such_package.domain:domain", "cannot import no_such_package.domain"),
        ("aggregates.shop:nothing", "has no attribute nothing"),
        ("aggregates.order:AGGREGATE", "aggregates.order:AGGREGATE is a Aggregate, not a Domain"),
    ],
)
def test_a_wrong_domain_setting_says_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        load_domain(spec)


def test_the_default_setting_loads_the_shop() -> None:
    assert load_domain("aggregates.shop:domain") is shop


def test_a_record_defined_twice_across_folders_is_refused(tmp_path: Path) -> None:
    (tmp_path / "CommandResult.avsc").write_text(
        json.dumps({"type": "record", "name": "CommandResult", "namespace": "cqrs.envelope",
                    "fields": []})
    )  # fmt: skip
    with pytest.raises(SchemaCatalogError, match="also defined by"):
        SchemaCatalog(tmp_path)


def test_the_guide_shows_the_library_domain_as_the_tests_run_it() -> None:
    # docs/domain.md's code block is tests/library/domain.py, so the guide cannot rot.
    guide = (ROOT / "docs" / "domain.md").read_text()
    shown = guide.split("```python\n# library/domain.py\n", 1)[1].split("```", 1)[0]
    source = (ROOT / "tests" / "library" / "domain.py").read_text()
    assert source.endswith(shown)
    library = load_domain("tests.library.domain:domain")
    assert list(library.command_types) == [
        "library.commands.AddBook",
        "library.commands.LendBook",
        "library.commands.RecordLoan",
    ]
    assert [manager.name for manager in library.process_managers] == ["loans"]
    catalog = SchemaCatalog.for_domain(library)
    assert set(library.command_types) | set(library.event_types) <= set(catalog)


def test_projections_are_found_through_the_domain() -> None:
    settings = Settings()
    assert registry.names(settings) == [
        "order-summary",
        "inventory-levels",
        "sales-analytics",
        "search-orders",
    ]
    assert registry.projection("inventory-levels", settings).name == "inventory-levels"
    with pytest.raises(ConfigurationError, match=r"no projection named 'nope'.*order-summary"):
        registry.projection("nope", settings)
    library = Settings(domain="tests.library.domain:domain")
    assert registry.names(library) == ["books"]
