"""What every service of the local stack provides to the orchestrator."""

from __future__ import annotations

import os
import pwd
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import PrerequisiteError
from core.settings import Settings
from deploy.stack.processes import LaunchSpec

Report = Callable[[str], None]


@dataclass(frozen=True)
class Port:
    """A port a service listens on, and the setting that moves it."""

    host: str
    port: int
    setting: str


class Service(ABC):
    """One server process of the local stack: prepared, launched, probed."""

    name: str
    description: str
    depends_on: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack.home.resolve() / self.name

    @property
    def pid_path(self) -> Path:
        return self.home / "server.pid"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "server.log"

    @abstractmethod
    def address(self) -> str:
        """Where clients reach the service."""

    @abstractmethod
    def ports(self) -> list[Port]:
        """Every port the service binds, checked for being free before launch."""

    @abstractmethod
    def prepare(self, report: Report) -> None:
        """Fetch what it runs on and initialise its storage; idempotent."""

    @abstractmethod
    def launch_spec(self) -> LaunchSpec:
        """The process to start."""

    @abstractmethod
    def probe(self) -> bool:
        """One real round trip through the service; never raises."""

    def initialize(self) -> None:  # noqa: B027 - optional hook, most services need none
        """Runs once the first probe passes (e.g. create roles); idempotent."""


def unprivileged_user(name: str) -> str | None:
    """The user servers that refuse root run as: None unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PrerequisiteError(
                f"cannot create the unprivileged user {name!r} ({result.stderr.strip()}); "
                "create it or run the stack as a normal user"
            ) from None
    return name


def hand_over(path: Path, user: str | None) -> None:
    """Give ``path`` to ``user`` and make every parent directory traversable for it."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for node in [path, *path.rglob("*")]:
        os.chown(node, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:
        if parent.stat().st_mode & 0o001 == 0:
            raise PrerequisiteError(
                f"{parent} is not traversable by the unprivileged user {user!r} that runs "
                "PostgreSQL; set CQRS_STACK__HOME to a directory outside it"
            )
