"""``cqrs query serve``: the HTTP query service (reads, read-your-writes, command gateway)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from core import tracing
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
    tracing.configure(settings.observability, "cqrs-query")
    listen_host = host or settings.query.host
    listen_port = settings.query.port if port is None else port
    app, keys = build_server_app(settings)
    check_binding(listen_host, keys)
    # Bound before the announcement, so whoever waits for it can connect at once.
    listener = _listen(listen_host, listen_port)
    print(
        f"query service on http://{listen_host}:{listener.getsockname()[1]} (API docs at /docs)",
        flush=True,
    )
    settle_garbage_collector()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", loop="auto", http="auto"
    )
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is one line, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise typer.BadParameter(
            f"cannot listen on {host}:{port}: {error.strerror}", param_hint="--host/--port"
        ) from None
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener
