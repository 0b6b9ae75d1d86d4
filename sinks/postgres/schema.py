"""Versioned migrations, table sets and the views readers query.

**Migrations** are numbered per projection and written against a table-set
schema (``Migration.statements(schema)``), so the same list builds the live
set, upgrades it, and builds a rebuild's shadow set. ``schema_migrations``
records, per *scope* (``base`` or a table-set schema), which numbers ran.
Each ``migrate`` runs in one transaction under an advisory lock, so processes
starting together apply a migration exactly once, and a failing migration
leaves nothing behind.

**Table sets.** ``projection_sets`` names each projection's live set. Readers
query views in the base schema, which select from the live set. Sinks write to
the set the pointer names, reading it ``FOR SHARE`` at the start of each
transaction; a rebuild's switch updates it ``FOR UPDATE``, so a switch waits
for the write in flight and the next write goes to the new set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

Cursor = psycopg.Cursor[tuple[object, ...]]
BASE_SCOPE = "base"
LOCK_NAMESPACE = "cqrs-read-models/"


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    statements: Callable[[str], Sequence[sql.Composed]]  # given the table-set schema


def table_set_name(base: str, projection: str, generation: int) -> str:
    """``<base>__<projection>_<generation>``, e.g. ``read_models__order_summary_1``."""
    return f"{base}__{projection.replace('-', '_')}_{generation}"


def position_tables(schema: str) -> list[sql.Composed]:
    """Tables every table set has: consumed positions and views waiting to be published."""
    return [
        sql.SQL(
            """CREATE TABLE {} (
                projection text NOT NULL,
                topic text NOT NULL,
                partition integer NOT NULL,
                next_offset bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (projection, topic, partition)
            )"""
        ).format(sql.Identifier(schema, "projection_offsets")),
        sql.SQL(
            """CREATE TABLE {} (
                id bigserial PRIMARY KEY,
                partition integer NOT NULL,
                view_keys text[] NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )"""
        ).format(sql.Identifier(schema, "publication_outbox")),
    ]


def _base_tables(base: str) -> list[sql.Composed]:
    return [
        sql.SQL(
            """CREATE TABLE {} (
                projection text PRIMARY KEY,
                active_schema text NOT NULL,
                generation integer NOT NULL,
                switched_at timestamptz NOT NULL DEFAULT now()
            )"""
        ).format(sql.Identifier(base, "projection_sets"))
    ]


BASE_MIGRATIONS = (Migration(1, "projection sets", _base_tables),)


@dataclass(frozen=True)
class SchemaPlan:
    """What ``migrate`` needs to know of one projection."""

    projection: str
    migrations: Sequence[Migration]
    exposed: Sequence[str]  # tables readers see as views in the base schema


def lock(cur: Cursor, base: str) -> None:
    """Serialise schema changes of one base schema (held until the transaction ends)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_NAMESPACE + base,))


def migrate(cur: Cursor, base: str, plans: Iterable[SchemaPlan]) -> list[str]:
    """Create or upgrade the base schema and each projection's live set; what ran, as lines.

    When everything is current it only reads, so a sink logged in as a role
    without DDL rights (``deploy/postgres/roles.sql``) starts on a database
    its owner migrated.
    """
    plans = list(plans)
    lock(cur, base)
    if is_current(cur, base, plans):
        return []
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(base)))
    cur.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                scope text NOT NULL,
                number integer NOT NULL,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (scope, number)
            )"""
        ).format(sql.Identifier(base, "schema_migrations"))
    )
    done = apply_pending(cur, base, BASE_SCOPE, base, BASE_MIGRATIONS)
    for plan in plans:
        active = active_table_set(cur, base, plan.projection)
        if active is None:
            active = table_set_name(base, plan.projection, 1)
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(active)))
            forget_scope(cur, base, active)
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(active)))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (projection, active_schema, generation) VALUES (%s, %s, 1)"
                ).format(sql.Identifier(base, "projection_sets")),
                (plan.projection, active),
            )
        applied = apply_pending(cur, base, active, active, plan.migrations)
        done += [f"{plan.projection}: {line}" for line in applied]
        if applied or missing_views(cur, base, plan.exposed):
            replace_views(cur, base, active, plan.exposed)
    return done


def is_current(cur: Cursor, base: str, plans: Sequence[SchemaPlan]) -> bool:
    """Whether the base schema, each live set, its migrations and its views are all there."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{base}"."schema_migrations"',))
    row = cur.fetchone()
    if row is None or not row[0]:
        return False
    if _applied(cur, base, BASE_SCOPE) < {m.number for m in BASE_MIGRATIONS}:
        return False
    for plan in plans:
        active = active_table_set(cur, base, plan.projection)
        if active is None or _applied(cur, base, active) < {m.number for m in plan.migrations}:
            return False
        if missing_views(cur, base, plan.exposed):
            return False
    return True


def _applied(cur: Cursor, base: str, scope: str) -> set[int]:
    cur.execute(
        sql.SQL("SELECT number FROM {} WHERE scope = %s").format(
            sql.Identifier(base, "schema_migrations")
        ),
        (scope,),
    )
    return {int(str(row[0])) for row in cur.fetchall()}


def apply_pending(
    cur: Cursor, base: str, scope: str, schema: str, migrations: Sequence[Migration]
) -> list[str]:
    """Run the migrations ``scope`` has not had yet, in order; returns what ran."""
    table = sql.Identifier(base, "schema_migrations")
    applied = _applied(cur, base, scope)
    ran = []
    for migration in sorted(migrations, key=lambda m: m.number):
        if migration.number in applied:
            continue
        for statement in migration.statements(schema):
            cur.execute(statement)
        cur.execute(
            sql.SQL("INSERT INTO {} (scope, number, name) VALUES (%s, %s, %s)").format(table),
            (scope, migration.number, migration.name),
        )
        ran.append(f"{scope} #{migration.number} {migration.name}")
    return ran


def forget_scope(cur: Cursor, base: str, scope: str) -> None:
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE scope = %s").format(
            sql.Identifier(base, "schema_migrations")
        ),
        (scope,),
    )


def active_table_set(cur: Cursor, base: str, projection: str, *, share: bool = False) -> str | None:
    """The live table set of a projection; ``share`` locks the pointer until commit."""
    query = sql.SQL("SELECT active_schema FROM {} WHERE projection = %s{}").format(
        sql.Identifier(base, "projection_sets"), sql.SQL(" FOR SHARE" if share else "")
    )
    cur.execute(query, (projection,))
    row = cur.fetchone()
    return None if row is None else str(row[0])


def generation_of(cur: Cursor, base: str, projection: str, *, for_update: bool = False) -> int:
    query = sql.SQL("SELECT generation FROM {} WHERE projection = %s{}").format(
        sql.Identifier(base, "projection_sets"), sql.SQL(" FOR UPDATE" if for_update else "")
    )
    cur.execute(query, (projection,))
    row = cur.fetchone()
    return 0 if row is None else int(str(row[0]))


def missing_views(cur: Cursor, base: str, tables: Sequence[str]) -> bool:
    cur.execute(
        "SELECT count(*) FROM pg_views WHERE schemaname = %s AND viewname = ANY(%s)",
        (base, list(tables)),
    )
    row = cur.fetchone()
    return row is None or int(str(row[0])) < len(tables)


def replace_views(cur: Cursor, base: str, table_set: str, tables: Sequence[str]) -> None:
    """Point the base schema's views at ``table_set`` (inside the caller's transaction)."""
    for table in tables:
        view = sql.Identifier(base, table)
        cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
        cur.execute(
            sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                view, sql.Identifier(table_set, table)
            )
        )
        cur.execute(
            sql.SQL("COMMENT ON VIEW {} IS {}").format(
                view, sql.Literal(f"read model; rows live in {table_set}.{table}")
            )
        )


def create_shadow(cur: Cursor, base: str, plan: SchemaPlan) -> str:
    """A fresh, empty table set of the next generation, built by every migration."""
    lock(cur, base)
    generation = generation_of(cur, base, plan.projection) + 1
    shadow = table_set_name(base, plan.projection, generation)
    cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow)))
    forget_scope(cur, base, shadow)
    cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(shadow)))
    apply_pending(cur, base, shadow, shadow, plan.migrations)
    return shadow


def switch(cur: Cursor, base: str, plan: SchemaPlan, shadow: str, old: str | None) -> None:
    """Make ``shadow`` live and drop ``old``; the caller holds the pointer ``FOR UPDATE``."""
    generation = int(shadow.rsplit("_", 1)[1])
    if old is None:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (projection, active_schema, generation) VALUES (%s, %s, %s)"
            ).format(sql.Identifier(base, "projection_sets")),
            (plan.projection, shadow, generation),
        )
    else:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET active_schema = %s, generation = %s, switched_at = now() "
                "WHERE projection = %s"
            ).format(sql.Identifier(base, "projection_sets")),
            (shadow, generation, plan.projection),
        )
        # Views committed live but not yet published are published from the new set.
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (partition, view_keys) SELECT partition, view_keys FROM {}"
            ).format(
                sql.Identifier(shadow, "publication_outbox"),
                sql.Identifier(old, "publication_outbox"),
            )
        )
    replace_views(cur, base, shadow, plan.exposed)
    if old is not None:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(old)))
        forget_scope(cur, base, old)
