"""The query service as an ASGI application (Starlette), served by ``cqrs query serve``.

Each endpoint is wrapped once (``_endpoint``): the caller's key is checked for
the endpoint's scope, the answer is timed into ``cqrs_query_request_seconds``,
and any error leaves as an RFC 9457 problem, never as a stack trace. Health
(``/livez``, ``/readyz``), ``/metrics``, ``/openapi.json`` and ``/docs`` need no key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import PipelineError, ProjectionNotReadyError, StoreUnavailableError
from core.query_settings import Scope
from cqrs.query import routes_commands, routes_reads
from cqrs.query.problems import Problem, unavailable
from cqrs.query.service import REQUESTS, QueryService
from cqrs.query.wire import json_response

log = logging.getLogger("cqrs.query")

Endpoint = Callable[[Request], Awaitable[Response]]
READY_TIMEOUT_S = 2.0


def _scope_of(route: Route) -> Scope:
    return "command" if route.name in ("command", "commands", "result") else "read"


def _endpoint(name: str, scope: Scope | None, handler: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            if scope is not None:
                service: QueryService = request.app.state.service
                keys = service.keys
                request.state.caller = keys.require(
                    keys.caller(
                        request.headers.get("authorization"), request.headers.get("x-api-key")
                    ),
                    scope,
                )
            response = await handler(request)
            status = response.status_code
            return response
        except Problem as problem:
            status = problem.status
            return problem.response(request.url.path)
        except Exception as error:  # every failure answers as a problem
            translated = _problem_of(error)
            status = translated.status
            if status >= 500:
                log.warning("query: %s %s failed: %s", request.method, request.url.path, error)
            return translated.response(request.url.path)
        finally:
            REQUESTS.labels(name, request.method, str(status)).observe(
                time.perf_counter() - started
            )

    return guarded


def _problem_of(error: Exception) -> Problem:
    if isinstance(error, StoreUnavailableError):
        return unavailable(str(error))
    if isinstance(error, ProjectionNotReadyError):
        return Problem(503, "projection-not-ready", "Projection not ready", str(error))
    if isinstance(error, psycopg.errors.UndefinedColumn | psycopg.errors.InvalidTextRepresentation):
        # The table set changed between the description and the query: the next try re-reads it.
        return unavailable("the projection's tables changed; retry", 0)
    if isinstance(error, PipelineError):
        return unavailable(str(error))
    return Problem(500, "internal", "Internal error", f"{type(error).__name__}: the log says more")


async def livez(_request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    service: QueryService = request.app.state.service
    try:
        await asyncio.wait_for(service.postgres.ping(), READY_TIMEOUT_S)
    except (TimeoutError, PipelineError) as error:
        reason = str(error) or "PostgreSQL did not answer in time"
        return json_response({"status": "not ready", "reason": reason}, status=503)
    return json_response({"status": "ready", "listening": service.postgres.listening})


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    from cqrs.query.openapi import document

    return json_response(await document(request.app.state.service))


async def docs(_request: Request) -> Response:
    from cqrs.query.openapi import DOCS_PAGE

    return HTMLResponse(DOCS_PAGE)


async def _not_found(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 404
    problem = Problem(
        status,
        "not-found" if status == 404 else "method-not-allowed",
        "Not found" if status == 404 else "Method not allowed",
        f"no {request.method} {request.url.path}; /docs lists the endpoints",
    )
    return problem.response(request.url.path)


def _routes(extra: list[tuple[Route, Scope | None]]) -> list[BaseRoute]:
    open_routes: list[tuple[str, Endpoint, str]] = [
        ("/livez", livez, "livez"),
        ("/readyz", readyz, "readyz"),
        ("/metrics", metrics, "metrics"),
        ("/openapi.json", openapi, "openapi"),
        ("/docs", docs, "docs"),
    ]
    routes: list[BaseRoute] = [
        Route(path, _endpoint(name, None, handler), methods=["GET"], name=name)
        for path, handler, name in open_routes
    ]
    guarded = [
        (route, _scope_of(route)) for route in (*routes_reads.ROUTES, *routes_commands.ROUTES)
    ]
    for route, scope in [*guarded, *extra]:
        routes.append(
            Route(
                route.path,
                _endpoint(route.name, scope, route.endpoint),
                methods=sorted(route.methods or ["GET"]),
                name=route.name,
            )
        )
    return routes


def build_app(
    service: QueryService,
    extra: list[tuple[Route, Scope | None]] | None = None,
    on_close: Callable[[], None] | None = None,
) -> Starlette:
    """The application over ``service``; ``extra`` adds routes with the scope each needs
    (None: open), ``on_close`` runs at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await service.open()
        try:
            yield {}
        finally:
            if on_close is not None:
                on_close()
            await service.close()

    app = Starlette(
        routes=_routes(extra or []),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )
    app.state.service = service
    return app
