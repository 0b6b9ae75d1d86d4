"""The query service's reads by id against the same reads straight from psycopg; its freshness.

Run with the local stack up: ``python -m benchmarks.query_api [--rounds 3]
[--rows 20000] [--concurrency 1 16 64] [--seconds 8] [--warmup 1] [--commands 100]
[--batch-waits 0.5 0.05]``. Everything lives in a namespace of its own (topic
prefix, read-model schema, index prefix), removed at the end.

**Reads by id.** The order-summary projection is migrated into the private
schema and its live table filled by ``COPY`` with ``--rows`` orders (each order's
row after placed, confirmed, shipped, as the sink computes it). ``cqrs query
serve`` runs as deployed: its own process (one uvicorn process, the options it
ships with), loopback, no keys. Each round, at each concurrency, for a fixed
time after a warm-up, asyncio tasks in this process read random ids:

- **API**: ``GET /projections/order-summary/{id}`` over one keep-alive
  connection per task, the JSON decoded (``benchmarks.http_reads``: a lean
  client, so that the load generator does not outweigh the service on the
  shared cores);
- **direct** (the peer): ``SELECT * FROM <schema>.order_summary WHERE order_id =
  %s`` with dict rows through an async psycopg pool of the service's size.

Requests per second and p50/p99 of each side, sides alternating first from round
to round. The load generator shares the machine's cores with the service and
PostgreSQL. Targets: API / direct at the highest concurrency at least 0.5; API p99
at concurrency 16 below 20 ms.

**Acceptance to read-your-write** (``benchmarks.query_freshness``): a worker and
the inventory-levels sink run under the prefix; per round and per sink batch wait
(``CQRS_SINKS__BATCH_MAX_WAIT_S``), ``--commands`` AdjustStock per way of waiting
(``min_version``, consistency token). No peer.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka.admin import AdminClient
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from benchmarks.common import delete_topics, report
from benchmarks.http_reads import KeepAliveConnection
from benchmarks.postgres_sink import backlog, drop_schemas, rows_per_event, with_schema
from benchmarks.query_freshness import freshness_round, percentile, register, worker
from benchmarks.sink_process import sink_processes
from core.settings import Settings, load_settings
from cqrs.children import cqrs_process
from schemas.topic_admin import ensure_topics
from sinks.registry import projection

SIDES = ("API", "direct")
SKUS = 100
Read = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Namespace:
    """The run's settings and the environment of every product process it starts."""

    settings: Settings
    env: dict[str, str]
    state: Path


def namespace(stack: Settings) -> Namespace:
    run = uuid.uuid4().hex[:8]
    prefix = f"bench-q{run}-"
    settings = with_schema(
        stack.model_copy(update={"kafka": stack.kafka.model_copy(update={"topic_prefix": prefix})}),
        f"bench_q{run}",
    )
    env = {
        "CQRS_KAFKA__TOPIC_PREFIX": prefix,
        "CQRS_PROCESSOR__APP_ID": f"{prefix}commands",
        "CQRS_PROCESSOR__PARTITIONS": str(settings.processor.partitions),
        "CQRS_SINKS__POSTGRES_SCHEMA": settings.sinks.postgres_schema,
        "CQRS_SEARCH__INDEX_PREFIX": f"bench-q{run}",
        "CQRS_QUERY__POOL_SIZE": str(settings.query.pool_size),
        "CQRS_OBSERVABILITY__PORT": "0",  # several processes on one host
    }
    return Namespace(settings, env, Path(tempfile.mkdtemp(prefix="cqrs-bench-query-")))


def fill_order_summary(settings: Settings, orders: int) -> list[str]:
    """Migrate order-summary and COPY ``orders`` rows into its live table; their ids."""
    projection("order-summary", settings).migrate(settings)
    last: dict[str, tuple[Any, ...]] = {}
    for row in rows_per_event(backlog(orders * 3)):  # placed, confirmed, shipped
        last[row[0]] = row
    base = settings.sinks.postgres_schema
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        found = conn.execute(
            sql.SQL("SELECT active_schema FROM {} WHERE projection = %s").format(
                sql.Identifier(base, "projection_sets")
            ),
            ["order-summary"],
        ).fetchone()
        assert found is not None, "order-summary was not migrated"
        table = sql.Identifier(str(found[0]), "order_summary")
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
            for row in last.values():
                copy.write_row(row)
        conn.commit()
        conn.execute(sql.SQL("ANALYZE {}").format(table))
        conn.commit()
    return list(last)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def query_service(space: Namespace) -> Iterator[str]:
    """``cqrs query serve`` on a free loopback port, yielded as its base URL once ready."""
    port = free_port()
    log = space.state / "query.log"
    with cqrs_process(
        ["query", "serve", "--port", str(port)], log, ["query service on"], space.env
    ):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not ready(base):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the query service is not ready; see {log}")
            time.sleep(0.2)
        yield base


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@dataclass(frozen=True)
class ReadSetup:
    ids: list[str]
    concurrency: list[int]
    warmup_s: float
    seconds: float


@dataclass(frozen=True)
class Sample:
    per_second: float
    p50_ms: float
    p99_ms: float


async def load(reads: Sequence[Read], setup: ReadSetup, seed: int) -> Sample:
    """One task per read (its own connection on the API side) reading random ids back to
    back; the requests that complete within ``setup.seconds`` after the warm-up count,
    with their latencies."""
    ids, seconds = setup.ids, setup.seconds
    measured_from = time.perf_counter() + setup.warmup_s
    until = measured_from + seconds
    latencies: list[float] = []

    async def reader(read: Read, pick: Callable[[Sequence[str]], str]) -> None:
        while (started := time.perf_counter()) < until:
            await read(pick(ids))
            done = time.perf_counter()
            if measured_from <= done <= until:
                latencies.append(done - started)

    await asyncio.gather(
        *(reader(read, random.Random(seed * 1000 + task).choice) for task, read in enumerate(reads))
    )
    milliseconds = [value * 1000 for value in latencies]
    return Sample(
        len(latencies) / seconds, statistics.median(milliseconds), percentile(milliseconds, 0.99)
    )


def api_read(connection: KeepAliveConnection) -> Read:
    async def read(order_id: str) -> None:
        await connection.get_json(f"/projections/order-summary/{order_id}")

    return read


def direct_read(pool: AsyncConnectionPool[Any], base: str) -> Read:
    # Rendered once, as the service renders its read by id.
    statement = (
        sql.SQL("SELECT * FROM {} WHERE order_id = %s")
        .format(sql.Identifier(base, "order_summary"))
        .as_bytes(None)
    )

    async def read(order_id: str) -> None:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(statement, [order_id])
            if await cur.fetchone() is None:
                raise RuntimeError(f"no order_summary row {order_id}")

    return read


async def measure(
    side: str, setup: ReadSetup, concurrency: int, direct: Read, base_url: str
) -> Sample:
    seed = concurrency  # both sides read the same ids in the same order
    if side == "direct":
        return await load([direct] * concurrency, setup, seed)
    address = httpx.URL(base_url)
    connections = [
        KeepAliveConnection(address.host, address.port or 80) for _ in range(concurrency)
    ]
    try:
        return await load([api_read(each) for each in connections], setup, seed)
    finally:
        for each in connections:
            await each.close()


async def read_rounds(
    settings: Settings, setup: ReadSetup, base_url: str, rounds: int
) -> dict[str, list[Sample]]:
    """Every round: each concurrency, both sides, the side that goes first alternating."""
    # As the service's pool: autocommit (no transaction per read), grows to pool_size.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.postgres.conninfo(),
        min_size=1,
        max_size=settings.query.pool_size,
        open=False,
        kwargs={"autocommit": True, "application_name": "bench-direct"},
    )
    direct = direct_read(pool, settings.sinks.postgres_schema)
    samples: dict[str, list[Sample]] = {}
    await pool.open(wait=True)
    try:
        for number in range(1, rounds + 1):
            order = SIDES if number % 2 else tuple(reversed(SIDES))
            for concurrency in setup.concurrency:
                for side in order:
                    sample = await measure(side, setup, concurrency, direct, base_url)
                    samples.setdefault(f"{side} c={concurrency}", []).append(sample)
                    print(
                        f"round {number}/{rounds}: reads by id, {side}, concurrency "
                        f"{concurrency}: {sample.per_second:,.0f}/s, p50 {sample.p50_ms:.2f} ms, "
                        f"p99 {sample.p99_ms:.2f} ms",
                        flush=True,
                    )
    finally:
        await pool.close()
    return samples


def freshness_rounds(
    space: Namespace, base_url: str, rounds: int, waits: list[float], commands: int
) -> dict[str, list[dict[str, Any]]]:
    """With a worker up: every round, the inventory-levels sink with each batch wait."""
    skus = [f"bench-sku-{index:03d}" for index in range(SKUS)]
    results: dict[str, list[dict[str, Any]]] = {f"batch wait {wait:g} s": [] for wait in waits}
    with worker(space.env, space.state), httpx.Client(base_url=base_url, timeout=60) as client:
        print(f"registering {len(skus)} items through the gateway …", flush=True)
        register(client, skus)
        for number in range(1, rounds + 1):
            for wait in waits:
                print(
                    f"round {number}/{rounds}: acceptance to read-your-write, batch wait "
                    f"{wait:g} s, {commands} AdjustStock per way of waiting …",
                    flush=True,
                )
                env = {**space.env, "CQRS_SINKS__BATCH_MAX_WAIT_S": str(wait)}
                with sink_processes("inventory-levels", env):
                    measured = freshness_round(client, skus, commands)
                results[f"batch wait {wait:g} s"].append(measured)
                print(
                    "  "
                    + ", ".join(
                        f"{part} p50 {values['p50_ms']:.0f} / p99 {values['p99_ms']:.0f} ms"
                        for part, values in measured.items()
                    ),
                    flush=True,
                )
    return results


def delete_groups(settings: Settings) -> None:
    """The consumer groups under the run's prefix (the worker's, the sink's), once empty."""
    prefix = settings.kafka.topic_prefix
    admin = AdminClient(settings.kafka.confluent_config())
    listed = admin.list_consumer_groups(request_timeout=15).result(30)
    mine = [group.group_id for group in listed.valid if group.group_id.startswith(prefix)]
    for future in admin.delete_consumer_groups(mine, request_timeout=30).values() if mine else []:
        future.result(60)


def print_rounds(
    samples: dict[str, list[Sample]], freshness: dict[str, list[dict[str, Any]]]
) -> None:
    print(f"\n{'reads by id':<18}{'round':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for case, per_round in samples.items():
        for number, sample in enumerate(per_round, 1):
            print(
                f"{case:<18}{number:>6}{sample.per_second:>10,.0f}"
                f"{sample.p50_ms:>9.2f}{sample.p99_ms:>9.2f}"
            )
    print(f"\n{'freshness':<20}{'round':>6}  p50 / p99 ms: gateway, min_version, token")
    for wait, measured_rounds in freshness.items():
        for number, measured in enumerate(measured_rounds, 1):
            parts = ", ".join(
                f"{values['p50_ms']:.0f} / {values['p99_ms']:.0f}" for values in measured.values()
            )
            print(f"{wait:<20}{number:>6}  {parts}")


def write_report(
    args: argparse.Namespace,
    settings: Settings,
    samples: dict[str, list[Sample]],
    freshness: dict[str, list[dict[str, Any]]],
) -> None:
    import importlib.util

    highest = max(args.concurrency)
    ratios = {f"API / direct c={c}": (f"API c={c}", f"direct c={c}") for c in args.concurrency}
    print_rounds(samples, freshness)
    report(
        "query_api",
        {case: [sample.per_second for sample in values] for case, values in samples.items()},
        ratios,
        {
            "latency_ms": {
                case: [{"p50": s.p50_ms, "p99": s.p99_ms} for s in values]
                for case, values in samples.items()
            },
            "freshness_ms": freshness,
            "targets": {f"API / direct c={highest}": 0.5, "API p99 c=16 ms": 20},
            "rows": args.rows,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "pool_size": settings.query.pool_size,
            "commands_per_way": args.commands,
            # What uvicorn picks with its defaults in this interpreter (the service's).
            "uvicorn": {
                "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
                "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
                "access_log": False,
                "workers": 1,
            },
        },
    )


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="order_summary rows to read")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time before it")
    parser.add_argument("--commands", type=int, default=100, help="per way of waiting and round")
    parser.add_argument("--batch-waits", type=float, nargs="+", default=[0.5, 0.05])
    return parser.parse_args()


def main() -> None:
    args = options()
    space = namespace(load_settings())
    ensure_topics(space.settings)
    try:
        print(f"filling order_summary with {args.rows:,} orders …", flush=True)
        setup = ReadSetup(
            fill_order_summary(space.settings, args.rows),
            args.concurrency,
            args.warmup,
            args.seconds,
        )
        with query_service(space) as base_url:
            samples = asyncio.run(read_rounds(space.settings, setup, base_url, args.rounds))
            freshness = freshness_rounds(
                space, base_url, args.rounds, args.batch_waits, args.commands
            )
        write_report(args, space.settings, samples, freshness)
    finally:
        # Also when interrupted: topics fill the broker's disk, schemas the database.
        delete_topics(space.settings)
        delete_groups(space.settings)
        drop_schemas(space.settings)
        shutil.rmtree(space.state, ignore_errors=True)


if __name__ == "__main__":
    main()
