"""A local HTTP server that answers like Elasticsearch, for protocol-level tests only.

It is NOT an Elasticsearch: it records what the real ``elasticsearch`` client
sends and returns scripted, Elasticsearch-shaped answers (with the
``X-Elastic-Product: Elasticsearch`` header the client insists on). Tests built
on it check request building and error mapping, never engine behaviour.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    product_header: bool = True
    content_type: str = "application/vnd.elasticsearch+json;compatible-with=8"


Script = Callable[[Request], Answer]


def es_error(status: int, kind: str, reason: str) -> Answer:
    return Answer(
        status,
        {
            "error": {
                "root_cause": [{"type": kind, "reason": reason}],
                "type": kind,
                "reason": reason,
            },
            "status": status,
        },
    )


def info_answer(version: str = "8.15.3") -> Answer:
    return Answer(
        200,
        {
            "name": "node-1",
            "cluster_name": "protocol-test",
            "version": {"number": version, "build_flavor": "default"},
            "tagline": "You Know, for Search",
        },
    )


class FakeElasticsearch:
    """Serves ``script`` on 127.0.0.1; ``requests`` holds everything received."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    raw,
                )
                server.requests.append(request)
                answer = server.script(request)
                payload = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                if answer.product_header:
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fake_elasticsearch(script: Script) -> Iterator[FakeElasticsearch]:
    server = FakeElasticsearch(script)
    server.start()
    try:
        yield server
    finally:
        server.close()
