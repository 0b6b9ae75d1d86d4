"""The Confluent Schema Registry REST API over a ``KafkaSchemaLog``.

Implements what producers, consumers and tools use: subjects and versions,
schemas by id, register and look-up, soft and permanent deletes, global and
per-subject compatibility, and the compatibility test. Only AVRO schemas
without references are accepted (the product's own schemas are self-contained).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import PipelineError
from schemas.registry.state import (
    INVALID_SCHEMA,
    ApiError,
    RegistryState,
    config_key,
    parse_mode,
)
from schemas.registry.store import KafkaSchemaLog

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
Handler = Callable[[Request], Awaitable[Response]]


class RegistryResponse(JSONResponse):
    media_type = CONTENT_TYPE


def build_app(log: KafkaSchemaLog) -> Starlette:
    api = _RegistryApi(log)
    routes = [
        Route("/", _endpoint(lambda _r, _b: {}), methods=["GET"]),
        Route("/schemas/types", _endpoint(lambda _r, _b: ["AVRO"]), methods=["GET"]),
        Route("/subjects", _endpoint(api.subjects), methods=["GET"]),
        Route("/subjects/{subject}", _endpoint(api.lookup), methods=["POST"]),
        Route("/subjects/{subject}", _endpoint(api.delete_subject), methods=["DELETE"]),
        Route("/subjects/{subject}/versions", _endpoint(api.versions), methods=["GET"]),
        Route("/subjects/{subject}/versions", _endpoint(api.register), methods=["POST"]),
        Route("/subjects/{subject}/versions/{version}", _endpoint(api.version), methods=["GET"]),
        Route(
            "/subjects/{subject}/versions/{version}",
            _endpoint(api.delete_version),
            methods=["DELETE"],
        ),
        Route(
            "/subjects/{subject}/versions/{version}/schema",
            _endpoint(api.raw_schema),
            methods=["GET"],
        ),
        Route("/schemas/ids/{id}", _endpoint(api.schema_by_id), methods=["GET"]),
        Route(
            "/schemas/ids/{id}/schema",
            _endpoint(api.raw_schema_by_id),
            methods=["GET"],
        ),
        Route("/schemas/ids/{id}/versions", _endpoint(api.schema_versions), methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", _endpoint(api.schema_subjects), methods=["GET"]),
        Route("/config", _endpoint(api.get_config), methods=["GET"]),
        Route("/config", _endpoint(api.put_config), methods=["PUT"]),
        Route("/config/{subject}", _endpoint(api.get_config), methods=["GET"]),
        Route("/config/{subject}", _endpoint(api.put_config), methods=["PUT"]),
        Route("/config/{subject}", _endpoint(api.delete_config), methods=["DELETE"]),
        Route("/compatibility/subjects/{subject}/versions", _endpoint(api.check), methods=["POST"]),
        Route(
            "/compatibility/subjects/{subject}/versions/{version}",
            _endpoint(api.check),
            methods=["POST"],
        ),
    ]
    return Starlette(routes=routes)


def _endpoint(work: Callable[[Request, dict[str, Any]], Any]) -> Handler:
    async def handle(request: Request) -> Response:
        try:
            body = await _body(request) if request.method in {"POST", "PUT"} else {}
            result = await run_in_threadpool(work, request, body)
        except ApiError as error:
            return RegistryResponse(
                {"error_code": error.code, "message": error.message}, status_code=error.status
            )
        except PipelineError as error:  # the Kafka log is unavailable
            return RegistryResponse({"error_code": 50001, "message": str(error)}, status_code=500)
        if isinstance(result, Response):
            return result
        return RegistryResponse(result)

    return handle


class _RegistryApi:
    """One method per endpoint; each takes the request and its parsed JSON body."""

    def __init__(self, log: KafkaSchemaLog) -> None:
        self.log = log

    def subjects(self, request: Request, _: dict[str, Any]) -> Any:
        deleted = flag(request, "deleted")
        return self.log.read(
            lambda s: sorted(
                name
                for name, versions in s.subjects.items()
                if deleted or any(not v.deleted for v in versions.values())
            )
        )

    def versions(self, request: Request, _: dict[str, Any]) -> Any:
        return self.log.read(
            lambda s: [
                v.version for v in s.live_versions(p(request, "subject"), flag(request, "deleted"))
            ]
        )

    def version(self, request: Request, _: dict[str, Any]) -> Any:
        return self.log.read(
            lambda s: s.version(
                p(request, "subject"), p(request, "version"), flag(request, "deleted")
            ).as_json()
        )

    def raw_schema(self, request: Request, _: dict[str, Any]) -> Any:
        found = self.log.read(lambda s: s.version(p(request, "subject"), p(request, "version")))
        return Response(found.schema, media_type=CONTENT_TYPE)

    def register(self, request: Request, body: dict[str, Any]) -> Any:
        schema = _schema_of(body)
        return {"id": self.log.write(lambda s: s.register(p(request, "subject"), schema))}

    def lookup(self, request: Request, body: dict[str, Any]) -> Any:
        schema = _schema_of(body)
        return self.log.read(
            lambda s: s.find(p(request, "subject"), schema, flag(request, "deleted")).as_json()
        )

    def delete_subject(self, request: Request, _: dict[str, Any]) -> Any:
        return self.log.write(
            lambda s: s.delete_subject(p(request, "subject"), flag(request, "permanent"))
        )

    def delete_version(self, request: Request, _: dict[str, Any]) -> Any:
        return self.log.write(
            lambda s: s.delete_version(
                p(request, "subject"), p(request, "version"), flag(request, "permanent")
            )
        )

    def raw_schema_by_id(self, request: Request, _: dict[str, Any]) -> Any:
        schema = self.log.read(lambda s: s.schema(_schema_id(request)))
        return Response(schema, media_type=CONTENT_TYPE)

    def schema_by_id(self, request: Request, _: dict[str, Any]) -> Any:
        return {"schema": self.log.read(lambda s: s.schema(_schema_id(request)))}

    def schema_versions(self, request: Request, _: dict[str, Any]) -> Any:
        schema_id = _schema_id(request)
        return self.log.read(lambda s: _usages(s, schema_id))

    def schema_subjects(self, request: Request, _: dict[str, Any]) -> Any:
        schema_id = _schema_id(request)
        return sorted(
            {usage["subject"] for usage in self.log.read(lambda s: _usages(s, schema_id))}
        )

    def get_config(self, request: Request, _: dict[str, Any]) -> Any:
        subject = request.path_params.get("subject")
        if subject is None:
            return {"compatibilityLevel": self.log.read(lambda s: s.mode(None)).value}
        configured = self.log.read(lambda s: s.modes.get(subject))
        if configured is None:
            if not flag(request, "defaultToGlobal"):
                raise ApiError(
                    404,
                    40408,
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                )
            configured = self.log.read(lambda s: s.mode(None))
        return {"compatibilityLevel": configured.value}

    def put_config(self, request: Request, body: dict[str, Any]) -> Any:
        mode = parse_mode(body.get("compatibility"))
        subject = request.path_params.get("subject")
        record = (config_key(subject), {"compatibilityLevel": mode.value})
        self.log.write(lambda _s: (None, [record]))
        return {"compatibility": mode.value}

    def delete_config(self, request: Request, _: dict[str, Any]) -> Any:
        subject = p(request, "subject")
        previous = self.log.read(lambda s: s.mode(subject))
        self.log.write(lambda _s: (None, [(config_key(subject), None)]))
        return {"compatibilityLevel": previous.value}

    def check(self, request: Request, body: dict[str, Any]) -> Any:
        schema = _schema_of(body)
        problems = self.log.read(
            lambda s: s.check(p(request, "subject"), schema, request.path_params.get("version"))
        )
        answer: dict[str, Any] = {"is_compatible": not problems}
        if flag(request, "verbose"):
            answer["messages"] = problems
        return answer


def p(request: Request, name: str) -> str:
    return str(request.path_params[name])


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as error:
        raise ApiError(422, INVALID_SCHEMA, f"request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(422, INVALID_SCHEMA, "request body must be a JSON object")
    return body


def _schema_of(body: dict[str, Any]) -> str:
    if body.get("schemaType", "AVRO") != "AVRO":
        raise ApiError(
            422, INVALID_SCHEMA, f"schemaType {body['schemaType']!r} is not supported; only AVRO"
        )
    if body.get("references"):
        raise ApiError(
            422,
            INVALID_SCHEMA,
            "schema references are not supported; register self-contained schemas",
        )
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise ApiError(422, INVALID_SCHEMA, "Invalid schema: the 'schema' field is missing")
    return schema


def _schema_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, 40403, f"Schema {request.path_params['id']} not found") from None


def _usages(state: RegistryState, schema_id: int) -> list[dict[str, Any]]:
    state.schema(schema_id)  # 40403 when unknown
    return [
        {"subject": version.subject, "version": version.version}
        for versions in state.subjects.values()
        for version in versions.values()
        if version.id == schema_id and not version.deleted
    ]
