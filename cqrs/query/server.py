"""The whole application a ``cqrs query serve`` process runs: reads, gateway and admin."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from core.query_settings import Scope
from core.settings import Settings
from cqrs.query import routes_admin
from cqrs.query.app import build_app
from cqrs.query.auth import Keys
from cqrs.query.console_data import Console
from cqrs.query.service import QueryService


def build_server_app(settings: Settings) -> tuple[Starlette, Keys]:
    service = QueryService(settings)
    console = Console(service)
    extra: list[tuple[Route, Scope | None]] = [
        *((route, "admin") for route in routes_admin.ROUTES),
        *((route, None) for route in routes_admin.OPEN_ROUTES),
    ]
    app = build_app(service, extra, on_close=console.close)
    app.state.console = console
    return app, service.keys
