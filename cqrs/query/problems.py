"""Errors as RFC 9457 problem details: ``application/problem+json`` with a type, a title,
the status, a detail that says what to do, and the members a client can act on."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

PROBLEM_TYPE = "https://cqrs-pipeline.dev/problems/"


# Outside core.errors: an HTTP answer (RFC 9457) raised to end a handler, not a failure.
class Problem(Exception):  # noqa: N818 - RFC 9457 names it a problem
    """An answer that is not a success; raised anywhere in a handler, rendered once."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.members = members

    def document(self, instance: str) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.members,
        }

    def response(self, instance: str) -> Response:
        return Response(
            orjson.dumps(self.document(instance)),
            status_code=self.status,
            media_type="application/problem+json",
            headers=self.headers,
        )


def bad_parameter(parameter: str, reason: str) -> Problem:
    return Problem(
        422,
        "invalid-parameter",
        "Invalid parameter",
        f"{parameter}: {reason}",
        parameter=parameter,
    )


def not_found(what: str, detail: str) -> Problem:
    return Problem(404, f"{what}-not-found", f"No such {what.replace('-', ' ')}", detail)


def unavailable(detail: str, retry_after_s: int = 1) -> Problem:
    return Problem(
        503,
        "store-unavailable",
        "Store unavailable",
        detail,
        headers={"Retry-After": str(retry_after_s)},
    )
