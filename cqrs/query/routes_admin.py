"""Admin endpoints (``admin`` scope): the operator console's data and the dead letters.

- ``GET /console``: the console page (it holds no data; what it shows is read with
  the caller's key from the endpoints below);
- ``GET /console/overview``: lag, freshness, throughput, groups, rebuilds;
- ``GET /dlq``: dead letters (``topic``, ``code``, ``limit``);
- ``GET /dlq/{topic}/{partition}/{offset}``: one, with headers and decoded payload;
- ``POST /dlq/replay``: ``{"dead_letters": ["topic/partition/offset", ...],
  "again": false}`` re-produces them to where they came from, once.
"""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from cqrs import dead_letter_tools as tools
from cqrs.query.console_data import Console, dead_letter_counts
from cqrs.query.problems import bad_parameter, not_found
from cqrs.query.routes_reads import service_of
from cqrs.query.wire import json_response

CONSOLE_PAGE = (files("cqrs.query") / "console.html").read_text(encoding="utf-8")
MAX_LISTED = 1000


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def console_page(_request: Request) -> Response:
    return HTMLResponse(CONSOLE_PAGE)


async def overview(request: Request) -> Response:
    return json_response((await console_of(request).overview()).as_dict())


def _plain(value: Any) -> Any:
    as_dict = getattr(value, "as_dict", None)
    return as_dict() if callable(as_dict) else value


async def list_dead_letters(request: Request) -> Response:
    service = service_of(request)
    params = request.query_params
    limit_text = params.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LISTED:
        raise bad_parameter("limit", f"expected a whole number from 1 to {MAX_LISTED}")
    letters = await asyncio.to_thread(
        tools.list_dead_letters,
        service.settings,
        topic=params.get("topic"),
        limit=int(limit_text),
        code=params.get("code"),
    )
    console_of(request).dead_letter_counts = dead_letter_counts(letters)
    return json_response({"dead_letters": [_plain(letter) for letter in letters]})


async def show_dead_letter(request: Request) -> Response:
    service = service_of(request)
    topic = request.path_params["topic"]
    partition, offset = request.path_params["partition"], request.path_params["offset"]
    try:
        detail = await asyncio.to_thread(
            tools.show_dead_letter, service.settings, topic, partition, offset
        )
    except LookupError as error:
        raise not_found("dead-letter", str(error)) from None
    return json_response(_plain(detail))


async def replay(request: Request) -> Response:
    service = service_of(request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise bad_parameter("body", f"not JSON: {error}") from None
    if not isinstance(body, dict) or not isinstance(body.get("dead_letters"), list):
        raise bad_parameter("dead_letters", "expected a list of topic/partition/offset")
    again = body.get("again", False)
    if not isinstance(again, bool):
        raise bad_parameter("again", "expected true or false")
    try:
        selections = [tools.parse_selection(str(item)) for item in body["dead_letters"]]
    except ValueError as error:
        raise bad_parameter("dead_letters", str(error)) from None
    report = await asyncio.to_thread(
        tools.replay_dead_letters,
        service.settings,
        selections,
        again=again,
        by=f"query-api:{request.state.caller.name}",
    )
    return json_response(_plain(report))


ROUTES = [
    Route("/console/overview", overview, methods=["GET"], name="console-overview"),
    Route("/dlq", list_dead_letters, methods=["GET"], name="dlq-list"),
    Route("/dlq/replay", replay, methods=["POST"], name="dlq-replay"),
    Route(
        "/dlq/{topic}/{partition:int}/{offset:int}",
        show_dead_letter,
        methods=["GET"],
        name="dlq-show",
    ),
]
OPEN_ROUTES = [Route("/console", console_page, methods=["GET"], name="console")]
