"""``cqrs query serve``: the HTTP query service (reads, read-your-writes, command gateway)."""

from __future__ import annotations

from typing import Annotated

import typer

from core.logs import configure_logging
from core.settings import load_settings

query_app = typer.Typer(
    help="The query service: HTTP reads of the read models and a command gateway.",
    no_args_is_help=True,
)


@query_app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: query.host, 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port to listen on [default: query.port, 8000]."),
    ] = None,
) -> None:
    """Serve /projections, /search, /commands, /console, /docs, /metrics, /livez and /readyz."""
    import uvicorn

    from cqrs.query.auth import check_binding
    from cqrs.query.server import build_server_app, settle_garbage_collector

    settings = load_settings()
    configure_logging(settings.log_level, settings.observability.log_format)
    listen_host = host or settings.query.host
    listen_port = settings.query.port if port is None else port
    app, keys = build_server_app(settings)
    check_binding(listen_host, keys)
    print(
        f"query service on http://{listen_host}:{listen_port} (API docs at /docs)",
        flush=True,
    )
    settle_garbage_collector()
    uvicorn.run(
        app,
        host=listen_host,
        port=listen_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
