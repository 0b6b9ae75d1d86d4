"""API keys and their scopes: ``read`` (projections, search), ``command`` (the gateway),
``admin`` (dead letters, the console).

A caller sends ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Every
configured key is compared in constant time (``hmac.compare_digest``), all of
them whatever matched, so the time taken says nothing about which key is near.
With no key configured the service checks nothing, and ``check_binding`` lets it
listen on loopback only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ConfigurationError
from core.query_settings import ApiKey, Scope
from cqrs.query.problems import Problem

OPEN = "anonymous"  # the caller's name when no key is configured


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[Scope]


class Keys:
    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = [(key.key.get_secret_value().encode(), key) for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def caller(self, authorization: str | None, api_key: str | None) -> Caller | None:
        """Who presents these headers (all scopes when no key is configured); None: nobody."""
        if not self._keys:
            return Caller(OPEN, frozenset(("read", "command", "admin")))
        given = api_key
        if given is None and authorization:
            scheme, _, value = authorization.partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        if not given:
            return None
        presented = given.encode()
        found: ApiKey | None = None
        for secret, key in self._keys:
            if hmac.compare_digest(secret, presented) and found is None:
                found = key
        return Caller(found.name, found.scopes) if found else None

    def require(self, caller: Caller | None, scope: Scope) -> Caller:
        if caller is None:
            raise Problem(
                401,
                "unauthenticated",
                "API key required",
                "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers={"WWW-Authenticate": 'Bearer realm="cqrs"'},
            )
        if scope not in caller.scopes:
            raise Problem(
                403,
                "forbidden",
                "Scope missing",
                f"key {caller.name} lacks the {scope} scope this endpoint needs",
                scope=scope,
            )
        return caller


def check_binding(host: str, keys: Keys) -> None:
    """Refuse to serve beyond this machine without keys: the service would be open to all."""
    if keys.enabled or _loopback(host):
        return
    raise ConfigurationError(
        f"refusing to listen on {host} without API keys: anyone could read and send commands; "
        "configure CQRS_QUERY__API_KEYS (or CQRS_QUERY__API_KEYS_FILE), or listen on 127.0.0.1"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
