"""A lean HTTP/1.1 keep-alive client for the query benchmark's load generator.

The load generator shares the machine's two cores with the service and
PostgreSQL, so its own cost per request must stay near the direct side's
(a psycopg query and a dict row): a general client such as httpx spends more
CPU per request than the service does and would measure itself. This one
writes a prepared GET, reads the status line, headers and a
``Content-Length`` body, and decodes the JSON, as a client of the API would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class KeepAliveConnection:
    """One TCP connection reused for GETs, one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get_json(self, path: str) -> Any:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = _content_length(header_block)
        body = await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        return orjson.loads(body)

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            await self._streams[1].wait_closed()
            self._streams = None


def _content_length(header_block: bytes) -> int:
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError("the answer has no Content-Length; the service always sends one")
