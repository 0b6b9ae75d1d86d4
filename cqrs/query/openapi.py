"""The OpenAPI 3.1 document of the running service, built from the domain it serves.

Each projection gets its own paths, with its columns as filter parameters; each
command gets ``POST /commands/<Type>`` with a request body schema derived from
its Avro record, so the document says exactly what this deployment accepts.
``DOCS_PAGE`` is a self-contained page (no assets from elsewhere) that lists
the operations and tries them against the service.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from cqrs.query.service import QueryService

PROBLEM = {"$ref": "#/components/responses/Problem"}
ERRORS = {str(status): PROBLEM for status in (401, 403, 404, 422, 503, 504)}
AVRO_JSON = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "null": {"type": "null"},
}
LOGICAL: dict[str, dict[str, Any]] = {
    "timestamp-millis": {"type": ["string", "integer"], "format": "date-time"},
    "timestamp-micros": {"type": ["string", "integer"], "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "decimal": {"type": ["string", "number"]},
}
TOKEN = {
    "name": "X-Consistency-Token",
    "in": "header",
    "required": False,
    "description": "From a command's answer: wait until the projection has read that command.",
    "schema": {"type": "string"},
}
TIMEOUT = {
    "name": "timeout",
    "in": "query",
    "description": "Seconds a read may wait for a version or token.",
    "schema": {"type": "number", "minimum": 0},
}

DOCS_PAGE = (files("cqrs.query") / "docs.html").read_text(encoding="utf-8")


def avro_to_json_schema(schema: Any, named: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema of what the gateway reads as JSON for an Avro schema (see json_values)."""
    if isinstance(schema, list):
        return {"anyOf": [avro_to_json_schema(branch, named) for branch in schema]}
    if isinstance(schema, str):
        if schema in named:
            return avro_to_json_schema(named[schema], named)
        return dict(AVRO_JSON.get(schema, {}))
    logical = LOGICAL.get(str(schema.get("logicalType")))
    if logical is not None:
        return dict(logical)
    kind = schema.get("type")
    if kind == "record":
        properties = {
            field["name"]: {
                **avro_to_json_schema(field["type"], named),
                **({"description": field["doc"]} if field.get("doc") else {}),
            }
            for field in schema["fields"]
        }
        required = [field["name"] for field in schema["fields"] if "default" not in field]
        return {"type": "object", "properties": properties, "required": required}
    if kind == "array":
        return {"type": "array", "items": avro_to_json_schema(schema["items"], named)}
    if kind == "map":
        return {
            "type": "object",
            "additionalProperties": avro_to_json_schema(schema["values"], named),
        }
    if kind == "enum":
        return {"type": "string", "enum": list(schema["symbols"])}
    return avro_to_json_schema(kind, named)


async def document(service: QueryService) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in service.projection_names:
        store = (
            service.store_of(name)
            if name in (*service.postgres.names, *service.search_names)
            else None
        )
        if store == "postgres":
            paths |= await _postgres_paths(service, name)
        elif store == "search":
            paths |= _search_paths(name)
    for command in service.gateway.commands:
        paths[f"/commands/{command}"] = {"post": _command_operation(service, command)}
    paths["/command-results/{command_id}"] = {
        "get": {
            "summary": "A command's result, once seen",
            "tags": ["commands"],
            "parameters": [_path("command_id")],
            "responses": {"200": _ok("The result"), "202": _ok("No result seen yet"), **ERRORS},
            "security": [{"apiKey": []}],
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cqrs query service",
            "version": "1",
            "description": "Reads of the read models with read-your-writes, and a command gateway.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                }
            },
        },
    }


def _ok(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


async def _postgres_paths(service: QueryService, name: str) -> dict[str, Any]:
    try:
        table = await service.postgres.table(name)
    except Exception:  # not migrated yet: documented without columns
        return {}
    filters = []
    for column in table.columns:
        if not column.filterable:
            continue
        filters.append(
            {
                "name": column.name,
                "in": "query",
                "description": f"{column.type}; a,b for any of them; also {column.name}__gt, "
                "__gte, __lt, __lte, __ne",
                "schema": {"type": "string"},
            }
        )
    orderable = [column.name for column in table.columns if column.orderable]
    listing = {
        "summary": f"List {name} ({table.view})",
        "tags": [name],
        "parameters": [
            *filters,
            {
                "name": "order",
                "in": "query",
                "schema": {"type": "string", "enum": [*orderable, *(f"-{c}" for c in orderable)]},
            },
            {
                "name": "limit",
                "in": "query",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": service.settings.query.max_page_size,
                },
            },
            {
                "name": "after",
                "in": "query",
                "description": "The cursor of the previous page",
                "schema": {"type": "string"},
            },
            TOKEN,
            TIMEOUT,
        ],
        "responses": {"200": _ok("A page of views and the next page's link"), **ERRORS},
        "security": [{"apiKey": []}],
    }
    paths: dict[str, Any] = {f"/projections/{name}": {"get": listing}}
    if table.by_id:
        parameters = [_path("id"), TOKEN, TIMEOUT]
        if table.version is not None:
            parameters.append(
                {
                    "name": "min_version",
                    "in": "query",
                    "description": "Wait for this version",
                    "schema": {"type": "integer", "minimum": 0},
                }
            )
        paths[f"/projections/{name}/{{id}}"] = {
            "get": {
                "summary": f"One {name} view by {table.key[0]}",
                "tags": [name],
                "parameters": parameters,
                "responses": {"200": _ok("The view"), **ERRORS},
                "security": [{"apiKey": []}],
            }
        }
    return paths


def _search_paths(name: str) -> dict[str, Any]:
    query = [
        {
            "name": "q",
            "in": "query",
            "description": "Free text (simple query syntax)",
            "schema": {"type": "string"},
        },
        {
            "name": "sort",
            "in": "query",
            "description": "field or -field",
            "schema": {"type": "string"},
        },
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "size", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        TOKEN,
        TIMEOUT,
    ]
    return {
        f"/search/{name}": {
            "get": {
                "summary": f"Search {name}: filters field=value, ranges field__gte=value",
                "tags": [name],
                "parameters": query,
                "responses": {"200": _ok("Hits, total and the next page"), **ERRORS},
                "security": [{"apiKey": []}],
            }
        },
        f"/projections/{name}/{{id}}": {
            "get": {
                "summary": f"One {name} document",
                "tags": [name],
                "parameters": [
                    _path("id"),
                    TOKEN,
                    TIMEOUT,
                    {
                        "name": "min_version",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {"200": _ok("The document"), **ERRORS},
                "security": [{"apiKey": []}],
            }
        },
    }


def _command_operation(service: QueryService, command: str) -> dict[str, Any]:
    record: dict[str, Any] = service.catalog.parsed(service.gateway.record_of(command))  # type: ignore[assignment]
    named = record.get("__named_schemas", {})
    payload = avro_to_json_schema(
        {**record, "fields": [f for f in record["fields"] if f["name"] != "metadata"]}, named
    )
    return {
        "summary": record.get("doc") or command,
        "tags": ["commands"],
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "Becomes the command id: a repeat is answered with the first result",
                "schema": {"type": "string"},
            },
            {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": True}},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "aggregate_id": {"type": "string"},
                            "expected_version": {"type": ["integer", "null"]},
                            "payload": payload,
                        },
                        "required": ["aggregate_id", "payload"],
                    }
                }
            },
        },
        "responses": {
            "200": _ok("Accepted: version, event ids, consistency token"),
            "202": _ok("Durable, not decided yet (wait=false)"),
            "409": PROBLEM,
            **ERRORS,
        },
        "security": [{"apiKey": []}],
    }
