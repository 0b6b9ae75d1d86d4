"""Plain data ↔ frozen dataclasses, driven by type hints.

Turns Avro-decoded dicts into the domain's dataclasses and back, and snapshots
aggregate state as JSON. Handles what the domain uses: dataclasses, StrEnums,
``X | None``, ``tuple[X, ...]`` and fixed tuples.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def build(cls: type[T], data: Any) -> T:
    """An instance of ``cls`` from plain data (dicts, lists, strings, numbers)."""
    return typing.cast(T, _convert(cls, data))


def plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, enums to their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        return None if data is None else _convert(options[0], data)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item) for item in data)
        return tuple(_convert(arg, item) for arg, item in zip(args, data, strict=True))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        known = {f.name for f in dataclasses.fields(hint)}
        return hint(
            **{name: _convert(hints[name], value) for name, value in data.items() if name in known}
        )
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(data)
    return data
