"""A minimal exactly-once Faust app for the smoke test: counts records per key.

Configured through environment variables by the test that starts it, so the
test can give it unique topic names. Keys and values are raw bytes: no codec of
Faust's touches the topics' bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust

app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    processing_guarantee="exactly_once",
    store="memory://",
    datadir=os.environ["SMOKE_DATADIR"],
    topic_partitions=2,
    topic_replication_factor=1,
    web_enabled=False,
)
source = app.topic(os.environ["SMOKE_IN"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["SMOKE_OUT"], key_serializer="raw", value_serializer="raw")
counts = app.Table("counts", default=int, partitions=2)


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
    async for key, _value in stream.items():
        name = key.decode()
        counts[name] += 1
        await sink.send(key=key, value=f"{name}={counts[name]}".encode())
        yield None
