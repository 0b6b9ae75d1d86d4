"""JSON on the wire: orjson, with the store's values said the way JSON can.

Timestamps become ISO 8601 text (orjson's own), decimals become text so that no
digit is lost to a float, and bytes become base64.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(document: object) -> bytes:
    return orjson.dumps(document, default=_default, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    document: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        dumps(document), status_code=status, media_type="application/json", headers=headers
    )
