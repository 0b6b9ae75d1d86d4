"""A small client for any Confluent-API schema registry.

Works against Confluent Schema Registry, Karapace, Apicurio (ccompat API),
Redpanda and the embedded registry; basic auth and TLS come from the settings.
Schemas are immutable per id, so look-ups by id and by (subject, schema) are
cached for the life of the client.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import RegistryError, UnknownSchemaIdError
from core.settings import RegistrySettings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_NOT_FOUND = 40403


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    id: int
    version: int
    schema: str


@dataclass(frozen=True)
class CompatibilityVerdict:
    compatible: bool
    messages: list[str]


class RegistryClient:
    """Thread-safe; share one per process."""

    def __init__(self, settings: RegistrySettings, timeout_s: float = 10.0) -> None:
        auth = None
        if settings.username and settings.password:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        verify: bool | str = str(settings.ssl_cafile) if settings.ssl_cafile else True
        cert = None
        if settings.ssl_certfile and settings.ssl_keyfile:
            cert = (str(settings.ssl_certfile), str(settings.ssl_keyfile))
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/"),
            auth=auth,
            verify=verify,
            cert=cert,
            timeout=timeout_s,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
        )
        self._lock = threading.Lock()
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self._http.close()

    def register(self, subject: str, schema: str) -> int:
        """Register (idempotently) and return the schema id."""
        key = (subject, schema)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        body = self._call("POST", f"/subjects/{_path(subject)}/versions", {"schema": schema})
        schema_id = int(body["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._by_id[schema_id] = schema
        return schema_id

    def lookup(self, subject: str, schema: str) -> RegisteredSchema:
        """The version of ``schema`` under ``subject``; RegistryError 40403 if absent."""
        body = self._call("POST", f"/subjects/{_path(subject)}", {"schema": schema})
        found = _registered(body)
        with self._lock:
            self._ids[(subject, schema)] = found.id
        return found

    def schema_by_id(self, schema_id: int) -> str:
        with self._lock:
            if schema_id in self._by_id:
                return self._by_id[schema_id]
        try:
            body = self._call("GET", f"/schemas/ids/{schema_id}")
        except RegistryError as error:
            if error.code == SCHEMA_NOT_FOUND or error.status == 404:
                raise UnknownSchemaIdError(schema_id) from error
            raise
        schema = str(body["schema"])
        with self._lock:
            self._by_id[schema_id] = schema
        return schema

    def subjects(self) -> list[str]:
        return [str(s) for s in self._call("GET", "/subjects")]

    def versions(self, subject: str) -> list[int]:
        return [int(v) for v in self._call("GET", f"/subjects/{_path(subject)}/versions")]

    def version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        return _registered(self._call("GET", f"/subjects/{_path(subject)}/versions/{version}"))

    def test_compatibility(
        self, subject: str, schema: str, version: int | str | None = "latest"
    ) -> CompatibilityVerdict:
        """Check against one version, or (``version=None``) against all the mode requires."""
        target = "" if version is None else f"/{version}"
        body = self._call(
            "POST",
            f"/compatibility/subjects/{_path(subject)}/versions{target}?verbose=true",
            {"schema": schema},
        )
        return CompatibilityVerdict(bool(body["is_compatible"]), list(body.get("messages", [])))

    def compatibility(self, subject: str | None = None) -> str:
        path = f"/config/{_path(subject)}?defaultToGlobal=true" if subject else "/config"
        body = self._call("GET", path)
        return str(body.get("compatibilityLevel") or body.get("compatibility"))

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        path = f"/config/{_path(subject)}" if subject else "/config"
        self._call("PUT", path, {"compatibility": level})

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(
                method, path, content=None if payload is None else json.dumps(payload)
            )
        except httpx.HTTPError as error:
            raise RegistryError(
                f"schema registry at {self._http.base_url} is unreachable ({error}); "
                "check CQRS_REGISTRY__URL and that the registry runs",
                status=0,
                code=0,
            ) from error
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            code, message = int(body.get("error_code", response.status_code)), body.get("message")
        except (ValueError, AttributeError):
            code, message = response.status_code, response.text[:200]
        raise RegistryError(
            f"registry {method} {path} failed ({response.status_code}/{code}): {message}",
            status=response.status_code,
            code=code,
        )


def _path(subject: str) -> str:
    return httpx.URL(path=subject).raw_path.decode().replace("/", "%2F")


def _registered(body: dict[str, Any]) -> RegisteredSchema:
    return RegisteredSchema(
        subject=str(body["subject"]),
        id=int(body["id"]),
        version=int(body["version"]),
        schema=str(body["schema"]),
    )
