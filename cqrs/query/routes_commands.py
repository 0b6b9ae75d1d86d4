"""The command gateway's endpoints.

- ``GET /commands``: the domain's command types;
- ``POST /commands/{CommandType}``: produce a command and answer with its result:
  200 accepted (version, event ids, consistency token), 409 rejected by the
  aggregate's state, 422 malformed; ``?wait=false`` answers 202 once the
  command is durable, with a ``Location`` to poll;
- ``GET /command-results/{command_id}``: a result this process has seen (200), or
  202 while none has been seen yet.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cqrs.client import CommandResult
from cqrs.query.gateway import parse_request, rejection_problem, result_document
from cqrs.query.problems import Problem, bad_parameter
from cqrs.query.routes_reads import service_of
from cqrs.query.service import QueryService
from cqrs.query.wire import json_response

MAX_BODY = 1_000_000


async def list_commands(request: Request) -> Response:
    return json_response({"commands": service_of(request).gateway.commands})


async def post_command(request: Request) -> Response:
    service = service_of(request)
    command = request.path_params["command"]
    service.gateway.record_of(command)  # 404 for an unknown command before reading the body
    wait = request.query_params.get("wait", "true").lower()
    if wait not in ("true", "false"):
        raise bad_parameter("wait", "expected true or false")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "body-too-large", "Body too large", f"at most {MAX_BODY} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise bad_parameter("body", f"not JSON: {error}") from None
    parsed = parse_request(command, document, request.headers.get("idempotency-key"))
    answer = await service.gateway.send(
        parsed,
        wait=wait == "true",
        timeout_s=service.settings.query.command_timeout_s,
        http_headers=request.headers,
    )
    if isinstance(answer, str):
        location = f"/command-results/{answer}"
        return json_response(
            {"command_id": answer, "status": "PENDING", "location": location},
            status=202,
            headers={"Location": location},
        )
    return await _answer(service, answer)


async def _answer(service: QueryService, result: CommandResult) -> Response:
    if not result.accepted:
        raise rejection_problem(result)
    token = await service.gateway.token(result)
    headers = {"X-Consistency-Token": token} if token else None
    return json_response(result_document(result, token), headers=headers)


async def command_result(request: Request) -> Response:
    service = service_of(request)
    command_id = request.path_params["command_id"]
    result = service.gateway.recent_result(command_id)
    if result is None:
        return json_response(
            {"command_id": command_id, "status": "PENDING"},
            status=202,
            headers={"Retry-After": "1"},
        )
    return await _answer(service, result)


ROUTES = [
    Route("/commands", list_commands, methods=["GET"], name="commands"),
    Route("/commands/{command}", post_command, methods=["POST"], name="command"),
    Route("/command-results/{command_id}", command_result, methods=["GET"], name="result"),
]
