"""A minimal exactly-once Faust app for the smoke test: counts records per key.

It runs on the product's exactly-once layer (``PipelineApp``, ``processing``,
``put``, ``emit``), as every worker does, not on Faust's own transactions:
faust-streaming 0.15.3 can drop a record that arrives while a table restore
finishes and commit its offset anyway, and this test's second life sends its
records exactly then. Configured through environment variables by the test that
starts it, so the test can give it unique topic names. Keys and values are raw
bytes: no codec of Faust's touches the topics' bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import faust
from faust.types import TableT

from processors.instance import claim_transactional_id
from processors.transactions import PipelineApp, emit, processing, put

APP_ID = os.environ["SMOKE_APP_ID"]
DATADIR = Path(os.environ["SMOKE_DATADIR"])
DATADIR.mkdir(parents=True, exist_ok=True)

app = PipelineApp(
    APP_ID,
    instance=claim_transactional_id(APP_ID, DATADIR),
    transaction_timeout_s=10.0,
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    processing_guarantee="exactly_once",
    store="memory://",
    datadir=str(DATADIR),
    topic_partitions=2,
    topic_replication_factor=1,
    broker_commit_interval=0.1,
    web_enabled=False,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["SMOKE_IN"])
SINK = os.environ["SMOKE_OUT"]
counts: TableT[bytes, bytes] = app.Table(
    "counts", default=None, key_type=bytes, value_type=bytes, partitions=2
)


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for event in stream.events():
        async with processing(app, event) as ours:
            if ours:
                key = event.key or b""
                total = int(counts.data.get(key, b"0")) + 1
                await put(counts, event, key, str(total).encode())
                await emit(app, SINK, key, f"{key.decode()}={total}".encode())
        yield None
