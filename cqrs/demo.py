"""``cqrs demo``: the whole pipeline on the local stack, driven by a small shop's traffic.

Brings the stack up, starts the command processor, the fulfilment saga, every
sink and the query service as the real ``cqrs`` processes, sends a script of
commands through ``CommandClient``, waits for the saga and the read side to
settle, and prints what each part produced, read back through the query
service's HTTP API as any client would: command results, the PostgreSQL read
models, a search query, the sales analytics, then the consumer lag of every
group. The query service keeps running while the demo's processes do; its URLs
(API docs, console) are printed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.errors import PipelineError
from core.settings import Settings
from cqrs.children import WORKER_READY, cqrs_process
from cqrs.client import CommandClient, CommandResult
from cqrs.demo_views import QueryApi
from sinks.registry import names as projection_names

Say = Callable[[str], None]
ITEMS = {  # sku: (name, units in stock)
    "MUG-01": ("Stoneware mug", 40),
    "TEA-25": ("Loose-leaf tea 250 g", 30),
    "POT-CI": ("Cast-iron teapot", 3),
    "CUP-SET": ("Espresso cup set", 12),
}
CUSTOMERS = {
    "ada": ("Ada", "12 Crescent Rd", "Lyon", "69001", "FR"),
    "grace": ("Grace", "2 Harbour St", "Porto", "4050-001", "PT"),
    "linus": ("Linus", "8 Fjord Ave", "Bergen", "5003", "NO"),
}
PRICES = {"MUG-01": 1250, "TEA-25": 890, "POT-CI": 5400, "CUP-SET": 2600}
ORDERS = [  # customer, {sku: units}
    ("ada", {"MUG-01": 2, "TEA-25": 1}),
    ("grace", {"POT-CI": 2}),
    ("linus", {"CUP-SET": 1, "MUG-01": 4}),
    ("ada", {"POT-CI": 2, "TEA-25": 3}),  # only one pot left: rejected, tea released
    ("grace", {"TEA-25": 5}),
    ("linus", {"MUG-01": 1}),
    ("ada", {"CUP-SET": 2}),
    ("grace", {"MUG-01": 3, "CUP-SET": 1}),
]
FINAL = {"CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"}


@contextmanager
def process(command: Sequence[str], log: Path, ready: Sequence[str], say: Say) -> Iterator[None]:
    """A ``cqrs`` process for the demo's duration, with a free metrics port."""
    say(f"starting cqrs {' '.join(command)} (log: {log})")
    with cqrs_process(command, log, ready, {"CQRS_OBSERVABILITY__PORT": "0"}):
        yield


def run(settings: Settings, say: Say) -> None:
    from deploy.stack import stack

    states = stack.up(settings, say)
    if not all(state.ready for state in states):
        raise PipelineError("the local stack is not ready; see cqrs stack status")
    logs = settings.stack.home / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as running:
        for log in logs.glob("*.log"):  # readiness is read from this run's lines only
            log.unlink()
        running.enter_context(process(["worker"], logs / "worker.log", [WORKER_READY], say))
        running.enter_context(process(["saga"], logs / "saga.log", [WORKER_READY], say))
        sinks_ready = [f"sink {name} assigned" for name in projection_names(settings)]
        running.enter_context(
            process(["sink", "run", "--all"], logs / "sinks.log", sinks_ready, say)
        )
        url = f"http://127.0.0.1:{settings.query.port}"
        running.enter_context(
            process(
                ["query", "serve", "--host", "127.0.0.1"],
                logs / "query.log",
                ["query service on"],
                say,
            )
        )
        api = QueryApi(url)
        running.callback(api.close)
        say(f"query API: {url}/docs  ·  operator console: {url}/console")
        client = running.enter_context(CommandClient(settings))
        run_id = uuid.uuid4().hex[:4].upper()  # every run its own SKUs and orders
        sent = traffic(client, run_id, say)
        settle(api, client, sent, say)
        show(api, run_id, sent)
    say("done: the stack keeps running (cqrs stack down stops it); worker logs in " + str(logs))


class Sent(list[tuple[str, CommandResult]]):
    """Every command the demo sent, by name, with its result."""

    def send(self, client: CommandClient, command: str, aggregate_id: str, **payload: Any) -> None:
        self.append((command, client.send_and_wait(command, aggregate_id, payload)))

    def add(self, command: str, answer: dict[str, Any]) -> None:
        """A command sent through the HTTP gateway, by its JSON answer."""
        self.append(
            (
                command,
                CommandResult(
                    answer["command_id"],
                    answer["status"],
                    answer["aggregate_id"],
                    answer["version"],
                    answer["event_ids"],
                    None,
                    None,
                    None,
                ),
            )
        )

    def accepted(self, name: str) -> list[str]:
        return [r.aggregate_id or "" for n, r in self if n == name and r.accepted]


def traffic(client: CommandClient, run_id: str, say: Say) -> Sent:
    """The shop's day: stock arrives and customers order."""
    sent = Sent()
    say("sending commands: stock arrives, customers order")
    for sku, (name, units) in ITEMS.items():
        sent.send(client, "RegisterItem", f"{sku}-{run_id}", name=name)
        sent.send(client, "AdjustStock", f"{sku}-{run_id}", delta=units, reason="RESTOCK")
    for number, (customer, lines) in enumerate(ORDERS, start=1):
        order_id = f"ord-{run_id}-{number:02d}"
        name, street, city, postal_code, country = CUSTOMERS[customer]
        sent.send(
            client,
            "PlaceOrder",
            order_id,
            customer_id=customer,
            shipping_address={
                "name": name,
                "street": street,
                "city": city,
                "postal_code": postal_code,
                "country": country,
            },
            lines=[
                {"sku": f"{sku}-{run_id}", "quantity": units, "unit_price_cents": PRICES[sku]}
                for sku, units in lines.items()
            ],
        )
    return sent


def settle(api: QueryApi, client: CommandClient, sent: Sent, say: Say) -> None:
    """Wait for the saga's decisions, then cancel one order and ship two; wait again."""
    placed = sent.accepted("PlaceOrder")
    statuses = _until_final(api, placed, say)
    confirmed = [order_id for order_id in placed if statuses.get(order_id) == "CONFIRMED"]
    say("a customer cancels an order; two orders ship (sent through the HTTP gateway)")
    for order_id in confirmed[:1]:
        sent.add("CancelOrder", api.command("CancelOrder", order_id, reason="changed my mind"))
    for order_id in confirmed[1:3]:
        sent.add("ShipOrder", api.command("ShipOrder", order_id, carrier="PostNord"))
    _until_final(api, placed, say, wanted=len(confirmed[:3]))


def _until_final(api: QueryApi, order_ids: list[str], say: Say, wanted: int = 0) -> dict[str, str]:
    """Poll the order-summary projection until every order is settled (and moved on)."""
    deadline = time.monotonic() + 90
    while True:
        statuses = api.order_statuses(order_ids)
        moved = sum(status in {"CANCELLED", "SHIPPED"} for status in statuses.values())
        if all(statuses.get(o) in FINAL for o in order_ids) and moved >= wanted:
            say(f"read model settled: {dict(Counter(statuses.values()))}")
            return statuses
        if time.monotonic() > deadline:
            raise PipelineError(
                f"orders did not settle within 90 s ({statuses}); see the demo's logs "
                "(the line 'starting cqrs ...' names each)"
            )
        time.sleep(0.5)


def show(api: QueryApi, run_id: str, sent: Sent) -> None:
    console = Console()
    tally = Counter(f"{name} {result.status.lower()}" for name, result in sent)
    console.print(_table("Command results", [{"command": k, "count": v} for k, v in tally.items()]))
    orders = sent.accepted("PlaceOrder")
    skus = [f"{sku}-{run_id}" for sku in ITEMS]
    base = api.url + "/projections"
    console.print(_table(f"order-summary (GET {base}/order-summary)", api.orders(orders)))
    console.print(
        _table(
            "a customer's orders (GET .../order-summary?customer_id=ada&order=-placed_at)",
            api.customer_history("ada", orders),
        )
    )
    console.print(_table(f"inventory-levels (GET {base}/inventory-levels)", api.inventory(skus)))
    hits = api.search_orders("Porto", order_id=",".join(orders))
    shown = [
        {k: hit.get(k) for k in ("order_id", "customer_id", "status", "total_cents")}
        for hit in hits
    ]
    console.print(
        _table(f'search: orders matching "Porto" (GET {api.url}/search/search-orders)', shown)
    )
    console.print(_table("sales-analytics, per minute", api.sales(skus)))
    subprocess.run([sys.executable, "-m", "cqrs", "lag"], check=False)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in rows[0] if rows else ["(empty)"]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    return table
