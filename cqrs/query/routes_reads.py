"""Read endpoints: a projection's view by id, its lists, search, and read-your-writes.

- ``GET /projections``: the domain's projections, their stores and what they accept;
- ``GET /projections/{projection}/{id}``: one view (PostgreSQL row or search
  document); ``?min_version=N`` waits until it shows version N of the aggregate;
- ``GET /projections/{projection}``: a page of a PostgreSQL view (filters, order,
  keyset cursor);
- ``GET /search/{projection}``: a search projection's safe query subset.

Every read accepts ``X-Consistency-Token`` (from the command gateway) and waits
until the projection has read that command's events. Waits are bounded by
``timeout`` (seconds, at most ``query.max_wait_s``) and answer 504 with where the
projection stands when the time runs out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import QueryParameterError, TokenError
from cqrs.query.consistency import ConsistencyToken
from cqrs.query.problems import Problem, bad_parameter
from cqrs.query.service import WAIT_SECONDS, WAITS, QueryService
from cqrs.query.tables import parse_list
from cqrs.query.wire import json_response

TOKEN_HEADER = "x-consistency-token"


def service_of(request: Request) -> QueryService:
    service: QueryService = request.app.state.service
    return service


def wait_limit(request: Request, service: QueryService) -> float:
    text = request.query_params.get("timeout")
    limit = service.settings.query.max_wait_s
    if text is None:
        return min(service.settings.query.default_wait_s, limit)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= limit:
        raise bad_parameter("timeout", f"expected seconds from 0 to {limit:g}")
    return value


async def honour_token(request: Request, service: QueryService, projection: str) -> None:
    """Wait until the projection has read the command of the request's consistency token."""
    text = request.headers.get(TOKEN_HEADER) or request.query_params.get("consistency_token")
    if not text:
        return
    try:
        token = ConsistencyToken.decode(text)
    except TokenError as error:
        raise bad_parameter("X-Consistency-Token", str(error)) from None
    timeout_s = wait_limit(request, service)
    started = time.monotonic()
    reached = await service.wait_for_token(projection, token, timeout_s)
    WAIT_SECONDS.labels(projection, "token").observe(time.monotonic() - started)
    WAITS.labels(projection, "token", "reached" if reached else "timeout").inc()
    if not reached:
        lag = await service.token_lag(projection, token)
        raise Problem(
            504,
            "consistency-timeout",
            "Projection behind the token",
            f"{projection} has not read the command of version {token.version} of "
            f"{token.aggregate_id} within {timeout_s:g}s; is `cqrs sink run {projection}` running?",
            lag=lag.as_dict() if lag else None,
        )


async def list_projections(request: Request) -> Response:
    service = service_of(request)
    listed: list[dict[str, Any]] = []
    for name in service.projection_names:
        store = (
            service.store_of(name)
            if name in (*service.postgres.names, *service.search_names)
            else None
        )
        entry: dict[str, Any] = {"name": name, "store": store}
        if store == "postgres":
            try:
                table = await service.postgres.table(name)
            except Exception as error:  # listed as not ready, with the reason
                entry["ready"] = False
                entry["reason"] = str(error)
            else:
                entry |= {
                    "ready": True,
                    "view": table.view,
                    "key": list(table.key),
                    "by_id": table.by_id,
                    "min_version": table.version is not None,
                    "columns": [
                        {
                            "name": column.name,
                            "type": column.type,
                            "filterable": column.filterable,
                            "orderable": column.orderable,
                        }
                        for column in table.columns
                    ],
                }
        elif store == "search":
            entry |= {
                "ready": True,
                "by_id": True,
                "min_version": True,
                "search": f"/search/{name}",
            }
        listed.append(entry)
    return json_response({"projections": listed})


async def read_one(request: Request) -> Response:
    service = service_of(request)
    name = request.path_params["projection"]
    aggregate_id = request.path_params["id"]
    store = service.store_of(name)
    wait_limit(request, service)  # a bad timeout is refused even when nothing waits
    await honour_token(request, service, name)
    wanted = _min_version(request)
    if wanted is not None:
        await _wait_for_version(request, service, name, aggregate_id, wanted)
    if store == "postgres":
        table = await service.postgres.table(name)
        if not table.by_id:
            raise Problem(
                400,
                "no-single-key",
                "Not readable by id",
                f"{name} is keyed by {', '.join(table.key)}; list it with filters instead",
            )
        found = await service.postgres.get(name, aggregate_id)
    else:
        found = await asyncio.to_thread(service.require_search().get, name, aggregate_id)
    if found is None:
        raise Problem(
            404, "view-not-found", "No such view", f"{name} has no view with id {aggregate_id!r}"
        )
    return json_response(found)


def _min_version(request: Request) -> int | None:
    text = request.query_params.get("min_version")
    if text is None:
        return None
    if not text.isdigit():
        raise bad_parameter("min_version", "expected a whole number ≥ 0")
    return int(text)


async def _wait_for_version(
    request: Request, service: QueryService, name: str, aggregate_id: str, wanted: int
) -> None:
    store = service.store_of(name)
    timeout_s = wait_limit(request, service)
    started = time.monotonic()
    seen: int | None
    if store == "postgres":
        if not service.postgres.has_versions(name):
            raise bad_parameter(
                "min_version", f"{name} keeps no version per aggregate; send a consistency token"
            )
        seen = await service.postgres.wait_for_version(name, aggregate_id, wanted, timeout_s)
    else:
        seen = await _search_version(service, name, aggregate_id, wanted, timeout_s)
    WAIT_SECONDS.labels(name, "version").observe(time.monotonic() - started)
    WAITS.labels(name, "version", "timeout" if seen is None else "reached").inc()
    if seen is None:
        current = await _current_version(service, name, store, aggregate_id)
        lag = await service.aggregate_lag(name, aggregate_id)
        raise Problem(
            504,
            "version-timeout",
            "Version not reached",
            f"{name} shows version {current} of {aggregate_id}, not {wanted}, after "
            f"{timeout_s:g}s; is `cqrs sink run {name}` running and caught up?",
            current_version=current,
            lag=lag.as_dict() if lag else None,
        )


async def _search_version(
    service: QueryService, name: str, aggregate_id: str, wanted: int, timeout_s: float
) -> int | None:
    # A document's version is read in real time (no refresh needed): poll it.
    reader = service.require_search()
    deadline = time.monotonic() + timeout_s
    while True:
        seen: int = await asyncio.to_thread(reader.version, name, aggregate_id)
        if seen >= wanted:
            return seen
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def _current_version(
    service: QueryService, name: str, store: str, aggregate_id: str
) -> int | None:
    if store == "postgres":
        return (await service.postgres.versions(name, [aggregate_id])).get(aggregate_id)
    return await asyncio.to_thread(service.require_search().version, name, aggregate_id)


async def list_views(request: Request) -> Response:
    service = service_of(request)
    name = request.path_params["projection"]
    if service.store_of(name) != "postgres":
        raise Problem(
            400,
            "use-search",
            "Listed by search",
            f"{name} is a search projection: GET /search/{name}",
        )
    wait_limit(request, service)
    await honour_token(request, service, name)
    table = await service.postgres.table(name)
    settings = service.settings.query
    try:
        query = parse_list(
            table,
            [
                (key, value)
                for key, value in request.query_params.multi_items()
                if key != "consistency_token"
            ],
            default_limit=settings.page_size,
            max_limit=settings.max_page_size,
        )
    except QueryParameterError as error:
        raise bad_parameter(error.parameter, error.reason) from None
    rows, cursor = await service.postgres.page(name, query)
    next_link = None
    if cursor is not None:
        params = [
            (key, value) for key, value in request.query_params.multi_items() if key != "after"
        ]
        next_link = str(request.url.replace(query=urlencode([*params, ("after", cursor)])))
    return json_response({"items": rows, "next": next_link, "cursor": cursor})


async def search(request: Request) -> Response:
    from core.errors import SearchParameterError

    service = service_of(request)
    name = request.path_params["projection"]
    if service.store_of(name) != "search":
        raise Problem(
            400, "not-searchable", "Not a search projection", f"{name}: GET /projections/{name}"
        )
    await honour_token(request, service, name)
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in ("timeout", "consistency_token"):
            params.setdefault(key, []).append(value)
    try:
        page = await asyncio.to_thread(service.require_search().search, name, params)
    except SearchParameterError as error:
        raise bad_parameter(error.parameter, error.reason) from None
    return json_response(
        {
            "items": page.hits,
            "total": page.total,
            "page": page.page,
            "size": page.size,
            "next_page": page.next_page,
        }
    )


ROUTES = [
    Route("/projections", list_projections, methods=["GET"], name="projections"),
    Route("/projections/{projection}", list_views, methods=["GET"], name="list"),
    Route("/projections/{projection}/{id:path}", read_one, methods=["GET"], name="read"),
    Route("/search/{projection}", search, methods=["GET"], name="search"),
]
