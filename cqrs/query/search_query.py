"""What a search of a search projection may ask, and the engine request it becomes.

Pure: a projection's mapping makes its ``SearchFields``; the query string of
``GET /search/{projection}`` and those fields make a ``SearchRequest`` whose
body the engine runs; the engine's answer and the request make a
``SearchPage``. Callers never send the engine's DSL, only these parameters:

| parameter | meaning |
|---|---|
| ``q=<text>`` | free text over the text fields (``simple_query_string``, all words) |
| ``<field>=<v>[,<v>…]`` | exact filter; a list or a repeated parameter means any of |
| ``<field>__gte/__gt/__lte/__lt=<v>`` | range on a numeric or date field |
| ``sort=[-]<field>[,…]`` | sort keys, ``-`` for descending |
| ``page=<n>``, ``size=<n>`` | 1-based page of ``size`` hits |

``simple_query_string`` is the free-text query because it never fails on
syntax (a stray quote or bracket is read as text), targets only the fields
given to it and has no regular expressions or scripts. Filters go to
``bool.filter`` (cached, unscored). Fields inside a ``nested`` object are
filtered through one ``nested`` query per path, so ``items.sku=A&items.quantity__gt=2``
means one line with both; they do not sort and do not take free text.

Every page ends in a tie-breaker sort key, so equal sort values keep one order
across pages: ``_id`` cannot be sorted on newer Elasticsearch, so it is the
document's own id field as the mapping shows it (a root ``keyword`` named
``id`` or ``document_id``, else the first one ending in ``_id``, which is how
projections list the aggregate's id first), else ``version`` (which only
narrows ties), else none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

from core.errors import SearchParameterError

RESERVED = frozenset({"q", "sort", "page", "size"})
RANGE_OPERATORS = ("gte", "gt", "lte", "lt")
MAX_QUERY_LENGTH = 500  # characters of q
MAX_QUERY_WORDS = 32  # words of q: each becomes clauses on every text field
MAX_VALUES = 100  # values of one filter
MAX_VALUE_LENGTH = 500

_INTEGER_BITS = {"long": 64, "integer": 32, "short": 16, "byte": 8}
_FLOAT_MAX = {
    "double": math.inf,
    "scaled_float": math.inf,
    "float": 3.4028234e38,
    "half_float": 65504.0,
}
_NUMERIC = frozenset(_INTEGER_BITS) | frozenset(_FLOAT_MAX)
_RANGED = _NUMERIC | {"date"}
_SORTABLE = _RANGED | {"keyword", "boolean"}
_TEXT = frozenset({"text", "match_only_text"})
_INTEGER_PATTERN = re.compile(r"[+-]?[0-9]{1,20}")
_FLOAT_PATTERN = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?")
_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.,]+(Z|[+-][0-9:]+)?)?")


@dataclass(frozen=True)
class SearchFields:
    """What a projection's mapping lets callers search by (dotted paths for objects)."""

    text: tuple[str, ...]  # free text (q)
    filters: Mapping[str, str]  # exact filters: field → its mapping type
    sortable: tuple[str, ...]
    ranged: tuple[str, ...]  # numeric and date filters
    nested: Mapping[str, str]  # filters inside a nested object: field → its nested path
    tie_breaker: str | None  # the last sort key of every page

    def describe(self) -> dict[str, Any]:
        """The fields as JSON, for callers asking what they may search by."""
        return {
            "text": list(self.text),
            "filters": dict(self.filters),
            "sortable": list(self.sortable),
            "ranges": list(self.ranged),
            "nested": dict(self.nested),
            "tie_breaker": self.tie_breaker,
        }


@dataclass(frozen=True)
class SearchRequest:
    body: dict[str, Any]  # the ``_search`` body
    page: int
    size: int
    window: int = 10_000  # results a search may page through (the index's max_result_window)


@dataclass(frozen=True)
class SearchPage:
    hits: list[dict[str, Any]]  # the documents' ``_source``
    total: int
    page: int
    size: int
    next_page: int | None  # None on the last page (or at the end of the window)


def search_fields(mappings: Mapping[str, Any], *, id_field: str | None = None) -> SearchFields:
    """The searchable fields of an explicit mapping; ``id_field`` overrides the tie-breaker."""
    leaves = list(_leaves(mappings.get("properties") or {}, "", None))
    filters = {path: kind for path, kind, _ in leaves if kind in _SORTABLE}
    nested = {path: inside for path, kind, inside in leaves if inside and kind in _SORTABLE}
    sortable = tuple(path for path in filters if path not in nested)
    if id_field is not None and (id_field not in sortable or filters[id_field] != "keyword"):
        raise ValueError(f"id_field {id_field!r} is not a sortable keyword field of the mapping")
    return SearchFields(
        text=tuple(path for path, kind, inside in leaves if kind in _TEXT and not inside),
        filters=MappingProxyType(filters),
        sortable=sortable,
        ranged=tuple(path for path, kind in filters.items() if kind in _RANGED),
        nested=MappingProxyType(nested),
        tie_breaker=id_field or _tie_breaker(filters, sortable),
    )


def _leaves(
    properties: Mapping[str, Any], prefix: str, inside: str | None
) -> Iterable[tuple[str, str, str | None]]:
    """(path, type, nested path) of every field, multi-fields included."""
    for name, field in properties.items():
        path = f"{prefix}{name}"
        kind = field.get("type", "object")
        if field.get("enabled") is False:
            continue
        if kind == "nested":
            # One level only: a nested object inside a nested one needs nested queries
            # within nested queries, which this subset does not build.
            if inside is None:
                yield from _leaves(field.get("properties") or {}, f"{path}.", path)
            continue
        if kind == "object":
            yield from _leaves(field.get("properties") or {}, f"{path}.", inside)
            continue
        yield path, kind, inside
        for sub, multi in (field.get("fields") or {}).items():
            yield f"{path}.{sub}", multi.get("type", ""), inside


def _tie_breaker(filters: Mapping[str, str], sortable: Sequence[str]) -> str | None:
    roots = [path for path in sortable if "." not in path and filters[path] == "keyword"]
    for preferred in ("id", "document_id"):
        if preferred in roots:
            return preferred
    own_id = next((path for path in roots if path.endswith("_id")), None)
    if own_id:
        return own_id
    return "version" if "version" in sortable else None


def build_search(
    fields: SearchFields,
    params: Mapping[str, Sequence[str]],
    *,
    default_size: int = 20,
    max_size: int = 100,
    max_window: int = 10_000,
    ignored: Collection[str] = (),
) -> SearchRequest:
    """The engine request for a query string; ``SearchParameterError`` for anything else.

    ``ignored`` names parameters the caller handles itself (e.g. a wait for a version).
    """
    check_limits(default_size, max_size, max_window)
    page, size = _paging(params, default_size, max_size, max_window)
    text = _free_text(fields, params.get("q", ()))
    filters = _filters(fields, {k: v for k, v in params.items() if k not in ignored})
    query: dict[str, Any] = {}
    if text:
        query["must"] = [text]
    if filters:
        query["filter"] = filters
    body = {
        "query": {"bool": query} if query else {"match_all": {}},
        "sort": _sort(fields, params.get("sort", ()), relevance=bool(text)),
        "from": (page - 1) * size,
        "size": size,
        "track_total_hits": True,
    }
    return SearchRequest(body, page, size, max_window)


def check_limits(default_size: int, max_size: int, max_window: int) -> None:
    """A ``ValueError`` unless 1 <= default_size <= max_size <= max_window (a set-up mistake)."""
    if not 1 <= default_size <= max_size <= max_window:
        raise ValueError(
            f"search page sizes: expected 1 <= default ({default_size}) <= most "
            f"({max_size}) <= window ({max_window})"
        )


def search_page(response: Mapping[str, Any], request: SearchRequest) -> SearchPage:
    """The page an engine's ``_search`` answer holds (either engine, any version)."""
    hits = response["hits"]
    total = hits["total"]  # an int before Elasticsearch 7, {"value", "relation"} since
    count = int(total["value"] if isinstance(total, Mapping) else total)
    following = request.page + 1
    more = request.page * request.size < count and following * request.size <= request.window
    return SearchPage(
        hits=[dict(hit.get("_source") or {}) for hit in hits["hits"]],
        total=count,
        page=request.page,
        size=request.size,
        next_page=following if more else None,
    )


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or ()
    if len(values) > 1:
        raise SearchParameterError(name, f"give it once, not {len(values)} times")
    return values[0] if values else None


def _positive(name: str, raw: str, most: int) -> int:
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= most:
        return int(raw)
    raise SearchParameterError(name, f"expected a whole number from 1 to {most}, got {_shown(raw)}")


def _paging(
    params: Mapping[str, Sequence[str]], default_size: int, max_size: int, window: int
) -> tuple[int, int]:
    raw_size = _single(params, "size")
    size = default_size if raw_size is None else _positive("size", raw_size, max_size)
    raw_page = _single(params, "page")
    page = 1 if raw_page is None else _positive("page", raw_page, window)
    if page * size > window:
        raise SearchParameterError(
            "page",
            f"page {page} of {size} hits reaches past the first {window} results, which is "
            f"as deep as a search pages (the last page at this size is {window // size}); "
            "narrow the search with filters instead",
        )
    return page, size


def _free_text(fields: SearchFields, values: Sequence[str]) -> dict[str, Any] | None:
    if len(values) > 1:
        raise SearchParameterError("q", f"give it once, not {len(values)} times")
    text = values[0].strip() if values else ""
    if not text:
        return None
    if not fields.text:
        raise SearchParameterError("q", "this projection has no free-text fields; use filters")
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchParameterError("q", f"at most {MAX_QUERY_LENGTH} characters, got {len(text)}")
    if len(re.findall(r"\w+", text)) > MAX_QUERY_WORDS:
        raise SearchParameterError("q", f"at most {MAX_QUERY_WORDS} words")
    return {
        "simple_query_string": {
            "query": text,
            "fields": list(fields.text),
            "default_operator": "and",
        }
    }


def _filters(fields: SearchFields, params: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    exact: dict[str, list[Any]] = {}
    ranges: dict[str, dict[str, Any]] = {}
    for name, values in params.items():
        if name in RESERVED:
            continue
        if name in fields.filters:
            exact[name] = _exact_values(fields, name, values)
            continue
        field, _, operator = name.rpartition("__")
        if operator not in RANGE_OPERATORS or field not in fields.filters:
            raise SearchParameterError(name, _accepted(fields))
        if field not in fields.ranged:
            raise SearchParameterError(
                name,
                f"{field} is a {fields.filters[field]} field and takes no ranges; ranges "
                f"take: {', '.join(fields.ranged) or 'no field of this projection'}",
            )
        value = _single(params, name) or ""
        bounds = ranges.setdefault(field, {})
        bounds[operator] = _convert(fields.filters[field], value.strip(), name)
        for pair in (("gt", "gte"), ("lt", "lte")):
            if pair[0] in bounds and pair[1] in bounds:
                raise SearchParameterError(
                    name, f"give {field}__{pair[0]} or __{pair[1]}, not both"
                )
    clauses: dict[str | None, list[dict[str, Any]]] = {}
    for field in sorted(exact.keys() | ranges.keys()):
        into = clauses.setdefault(fields.nested.get(field), [])
        if field in exact:
            into.append({"terms": {field: exact[field]}})
        if field in ranges:
            into.append({"range": {field: ranges[field]}})
    root = clauses.pop(None, [])
    nested = [
        {"nested": {"path": path, "query": {"bool": {"filter": inner}}}}
        for path, inner in sorted(clauses.items(), key=lambda item: str(item[0]))
    ]
    return root + nested


def _exact_values(fields: SearchFields, name: str, values: Sequence[str]) -> list[Any]:
    # A comma separates values, so a keyword holding a comma is not filterable here.
    items = [item.strip() for value in values for item in value.split(",")]
    if "" in items or not items:
        raise SearchParameterError(name, "empty value; give one or more values, comma-separated")
    if len(items) > MAX_VALUES:
        raise SearchParameterError(name, f"at most {MAX_VALUES} values, got {len(items)}")
    converted = [_convert(fields.filters[name], item, name) for item in items]
    return list(dict.fromkeys(converted))  # repeated values once, in the order given


def _convert(kind: str, raw: str, parameter: str) -> Any:
    """``raw`` as the engine compares it against a field of type ``kind``."""
    if len(raw) > MAX_VALUE_LENGTH:
        raise SearchParameterError(parameter, f"values are at most {MAX_VALUE_LENGTH} characters")
    if kind in _INTEGER_BITS:
        bound = 2 ** (_INTEGER_BITS[kind] - 1)
        if _INTEGER_PATTERN.fullmatch(raw) and -bound <= int(raw) < bound:
            return int(raw)
        expected = f"a whole number from {-bound} to {bound - 1}"
    elif kind in _FLOAT_MAX:
        number = float(raw) if _FLOAT_PATTERN.fullmatch(raw) else math.nan
        if math.isfinite(number) and abs(number) <= _FLOAT_MAX[kind]:
            return number
        expected = "a decimal number, e.g. 12.5"
    elif kind == "boolean":
        if raw in {"true", "false"}:
            return raw == "true"
        expected = "true or false"
    elif kind == "date":
        moment = _moment(raw)
        if moment is not None:
            return moment
        expected = "an ISO-8601 date or time, e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
    else:
        return raw
    raise SearchParameterError(parameter, f"expected {expected}, got {_shown(raw)}")


def _moment(raw: str) -> str | None:
    """An ISO-8601 date or time as UTC with milliseconds (what the engine stores); no zone: UTC."""
    if not _DATE_PATTERN.fullmatch(raw):
        return None
    try:
        parsed = datetime.fromisoformat(raw) if len(raw) > 10 else date.fromisoformat(raw)
    except ValueError:
        return None
    if not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day)
    aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        utc = aware.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00
        return None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sort(fields: SearchFields, values: Sequence[str], *, relevance: bool) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in (item.strip() for value in values for item in value.split(",")):
        field = item.removeprefix("-")
        if field not in fields.sortable:
            accepted = ", ".join(fields.sortable) or "no field of this projection"
            raise SearchParameterError(
                "sort", f"{_shown(field)} cannot sort; give <field> or -<field> of: {accepted}"
            )
        if field in seen:
            raise SearchParameterError("sort", f"{field} is given twice")
        seen.add(field)
        keys.append({field: {"order": "desc" if item.startswith("-") else "asc"}})
    if relevance:  # best matches first among equal sort keys
        keys.append({"_score": {"order": "desc"}})
    if fields.tie_breaker and fields.tie_breaker not in seen:
        keys.append({fields.tie_breaker: {"order": "asc"}})
    return keys


def _accepted(fields: SearchFields) -> str:
    return (
        f"unknown parameter; accepted: {', '.join(sorted(RESERVED))}, an exact filter "
        f"<field>=<value> on {', '.join(fields.filters) or 'no field'}, or a range "
        f"<field>__gte/__gt/__lte/__lt on {', '.join(fields.ranged) or 'no field'}"
    )


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")
