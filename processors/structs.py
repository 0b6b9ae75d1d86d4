"""Plain data ↔ frozen dataclasses, driven by type hints.

Turns Avro-decoded dicts into the domain's dataclasses and back, and snapshots
aggregate state as JSON. Handles what the domain uses: dataclasses, StrEnums,
``X | None``, ``tuple[X, ...]`` and fixed tuples.

Both directions run for every command, so the type hints are read once per
type and compiled into a converter (a closure per field); a value is then
converted without inspecting its type again.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
Converter = Callable[[Any], Any]


def build(cls: type[T], data: Any) -> T:
    """An instance of ``cls`` from plain data (dicts, lists, strings, numbers)."""
    return typing.cast(T, _builder(typing.cast(Any, cls))(data))


def plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, enums to their values."""
    return _plainer(type(value))(value)


def _identity(value: Any) -> Any:
    return value


# -- plain data → typed ----------------------------------------------------------


@cache
def _builder(hint: Any) -> Converter:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        inner = _builder(options[0])
        if inner is _identity:
            return _identity
        return lambda data: None if data is None else inner(data)
    if origin is tuple:
        return _tuple_builder(typing.get_args(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_builder(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    return _identity


def _tuple_builder(args: tuple[Any, ...]) -> Converter:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _builder(args[0])
        if item is _identity:
            return tuple
        return lambda data: tuple([item(element) for element in data])
    items = [_builder(arg) for arg in args]
    return lambda data: tuple(
        [convert(element) for convert, element in zip(items, data, strict=True)]
    )


def _dataclass_builder(cls: type) -> Converter:
    hints = typing.get_type_hints(cls)
    converters = {f.name: _builder(hints[f.name]) for f in dataclasses.fields(cls)}
    plain_fields = frozenset(name for name, c in converters.items() if c is _identity)

    def construct(data: Any) -> Any:
        arguments = {}
        for name, value in data.items():
            if name in plain_fields:
                arguments[name] = value
            else:
                convert = converters.get(name)
                if convert is not None:  # fields the class does not know are left out
                    arguments[name] = convert(value)
        return cls(**arguments)

    return construct


# -- typed → plain data ----------------------------------------------------------


def _plainer(kind: type) -> Converter:
    found = _PLAINERS.get(kind)
    if found is None:
        found = _PLAINERS[kind] = _make_plainer(kind)
    return found


_PLAINERS: dict[type, Converter] = {}


def _make_plainer(kind: type) -> Converter:
    if dataclasses.is_dataclass(kind):
        names = [f.name for f in dataclasses.fields(kind)]
        return lambda value: {name: _plain_any(getattr(value, name)) for name in names}
    if issubclass(kind, enum.Enum):
        return lambda value: value.value
    if issubclass(kind, (list, tuple)):
        return lambda value: [_plain_any(item) for item in value]
    return _identity


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def _plain_any(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    return _plainer(kind)(value)
