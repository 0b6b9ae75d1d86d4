"""Settings of the query service (``cqrs query serve``): where it listens, who may call it,
how long reads may wait for a version.

API keys come from ``query.api_keys`` (e.g. ``CQRS_QUERY__API_KEYS`` as JSON) and/or
``query.api_keys_file``, a JSON file such as a mounted Kubernetes Secret: a list of
``{"name": "...", "key": "...", "scopes": ["read", "command", "admin"]}``. The name is
what logs and metrics show; the key never appears anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from core.errors import ConfigurationError

Scope = Literal["read", "command", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "command", "admin")


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Shown in logs, never the key."
    )
    key: SecretStr = Field(min_length=16, description="At least 16 characters.")
    scopes: frozenset[Scope] = Field(min_length=1)


class QuerySettings(BaseModel):
    """The HTTP query service: reads, read-your-writes waits, the command gateway."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: tuple[ApiKey, ...] = Field(
        default=(), description="Keys and their scopes; none: loopback only, no checks."
    )
    api_keys_file: Path | None = Field(
        default=None, description="A JSON file of more keys (a mounted Secret)."
    )
    max_wait_s: float = Field(
        default=30.0, gt=0, description="Longest a read may wait for a version or token."
    )
    default_wait_s: float = Field(
        default=5.0, gt=0, description="How long a read waits when it names no timeout."
    )
    page_size: int = Field(default=50, ge=1, description="Rows of a list page by default.")
    max_page_size: int = Field(default=500, ge=1, description="Most rows a list page holds.")
    command_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the gateway waits for a command's result."
    )
    pool_size: int = Field(
        default=16, ge=1, description="PostgreSQL connections of one query process."
    )

    def all_api_keys(self) -> tuple[ApiKey, ...]:
        """The keys of the settings and of the keys file; ConfigurationError if the file is bad."""
        if self.api_keys_file is None:
            return self.api_keys
        where = f"CQRS_QUERY__API_KEYS_FILE={self.api_keys_file}"
        try:
            listed = json.loads(self.api_keys_file.read_text())
        except OSError as error:
            raise ConfigurationError(f"{where}: cannot read it ({error.strerror})") from None
        except json.JSONDecodeError as error:
            raise ConfigurationError(
                f"{where}: not JSON ({error.msg}, line {error.lineno})"
            ) from None
        if not isinstance(listed, list):
            raise ConfigurationError(f"{where}: expected a JSON list of keys")
        try:
            keys = tuple(ApiKey.model_validate(entry) for entry in listed)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise ConfigurationError(f"{where}: key {field}: {first['msg']}") from None
        return self.api_keys + keys
