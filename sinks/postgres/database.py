"""The edge to PostgreSQL: a connection pool, and library errors turned into ``SinkError``.

- no connection within the pool timeout: retryable (the server is down or
  unreachable);
- ``OperationalError`` (connection lost, admin shutdown, serialization failure,
  deadlock, lock or statement timeout) and ``InterfaceError``: retryable (the
  server is down, restarting or busy);
- any other ``psycopg.Error`` (undefined table, permission denied, bad data):
  not retryable, a broken deployment that retrying cannot mend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from core.errors import SinkError
from core.settings import PostgresSettings

CONNECT_TIMEOUT_S = 5


class Database:
    """A small pool for one sink process; ``transaction()`` is the unit of every write."""

    def __init__(self, settings: PostgresSettings, name: str, *, timeout_s: float = 5.0) -> None:
        self.address = f"{settings.host}:{settings.port}/{settings.database}"
        self._pool = ConnectionPool(
            settings.conninfo(),
            min_size=settings.pool_min_size,
            max_size=max(settings.pool_min_size, settings.pool_max_size),
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": name[:63]},
            check=ConnectionPool.check_connection,  # a restarted server leaves dead connections
            name=name,
            timeout=timeout_s,
            reconnect_timeout=0,  # keep trying: an outage is waited out, never given up on
            open=False,
        )
        self._opened = False

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        with self.errors(), self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with self.errors(), self._connection() as conn:
            yield conn

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Convert psycopg and pool errors into ``SinkError`` with ``retryable`` set."""
        try:
            yield
        except PoolTimeout as error:
            raise SinkError(
                f"PostgreSQL at {self.address} gave no connection in time ({error}); "
                "is it running and reachable?",
                retryable=True,
            ) from error
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise SinkError(
                f"PostgreSQL at {self.address} failed: {_first_line(error)}", retryable=True
            ) from error
        except psycopg.Error as error:
            raise SinkError(
                f"PostgreSQL at {self.address} refused the write: {_first_line(error)}",
                retryable=False,
            ) from error

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection() as conn:
            yield conn


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
