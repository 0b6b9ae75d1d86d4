"""PostgreSQL round trip with the read-model role: committed rows persist, rolled back do not."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from core.settings import Settings


@pytest.fixture
def schema(local_stack: Settings, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("smoke").replace("-", "_")
    with psycopg.connect(local_stack.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        yield name
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_committed_rows_are_read_back_and_rolled_back_rows_are_not(
    local_stack: Settings, schema: str
) -> None:
    table = sql.Identifier(schema, "orders")
    with psycopg.connect(local_stack.postgres.conninfo()) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, total numeric)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES ('o-1', 10.50), ('o-2', 3)").format(table))
        conn.commit()
        conn.execute(sql.SQL("INSERT INTO {} VALUES ('o-3', 99)").format(table))
        conn.rollback()

    with psycopg.connect(local_stack.postgres.conninfo()) as conn:
        rows = conn.execute(sql.SQL("SELECT id, total::text FROM {} ORDER BY id").format(table))
        assert rows.fetchall() == [("o-1", "10.50"), ("o-2", "3")]
        assert conn.execute("SELECT current_user").fetchone() == (local_stack.postgres.user,)


def test_wrong_password_is_refused(local_stack: Settings) -> None:
    conninfo = local_stack.postgres.conninfo().replace(
        f"password={local_stack.postgres.password.get_secret_value()}", "password=wrong"
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(conninfo)
