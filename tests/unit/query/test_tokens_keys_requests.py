"""Consistency tokens, API keys and the gateway's request shape: pure parts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from core.errors import ConfigurationError, TokenError
from core.query_settings import ApiKey, QuerySettings
from cqrs.client import CommandResult
from cqrs.query.auth import Keys, check_binding
from cqrs.query.consistency import ConsistencyToken
from cqrs.query.gateway import parse_request, rejection_problem
from cqrs.query.problems import Problem


@given(st.text(min_size=1, max_size=50), *(st.integers(0, 2**40) for _ in range(3)))
def test_tokens_round_trip(aggregate_id: str, version: int, partition: int, offset: int) -> None:
    token = ConsistencyToken(aggregate_id, version, partition, offset)
    assert ConsistencyToken.decode(token.encode()) == token


@pytest.mark.parametrize(
    "text", ["", "abc", "c1.", "c1.!!!!", "c1.WzEsMiwzXQ", "c1.WyJhIiwtMSwwLDBd"]
)
def test_damaged_tokens_are_refused(text: str) -> None:
    with pytest.raises(TokenError):
        ConsistencyToken.decode(text)


KEYS = Keys(
    [
        ApiKey(name="reader", key=SecretStr("r" * 20), scopes=frozenset({"read"})),
        ApiKey(name="ops", key=SecretStr("o" * 20), scopes=frozenset({"admin", "read"})),
    ]
)


def test_keys_name_their_caller_and_scopes() -> None:
    caller = KEYS.caller("Bearer " + "o" * 20, None)
    assert caller is not None and caller.name == "ops"
    assert KEYS.caller(None, "r" * 20) == KEYS.require(KEYS.caller(None, "r" * 20), "read")
    assert KEYS.caller("Basic " + "r" * 20, None) is None
    assert KEYS.caller(None, "r" * 19) is None
    with pytest.raises(Problem) as refused:
        KEYS.require(KEYS.caller(None, "r" * 20), "admin")
    assert refused.value.status == 403
    with pytest.raises(Problem) as missing:
        KEYS.require(None, "read")
    assert missing.value.status == 401 and "WWW-Authenticate" in missing.value.headers


def test_without_keys_only_loopback_is_served() -> None:
    open_keys = Keys([])
    for host in ("127.0.0.1", "::1", "localhost"):
        check_binding(host, open_keys)
    with pytest.raises(ConfigurationError, match="without API keys"):
        check_binding("0.0.0.0", open_keys)
    check_binding("0.0.0.0", KEYS)


def test_a_keys_file_adds_keys_and_a_bad_one_is_one_line(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    good = folder / "keys.json"
    good.write_text('[{"name": "ci", "key": "kkkkkkkkkkkkkkkkkkkk", "scopes": ["read"]}]')
    assert [key.name for key in QuerySettings(api_keys_file=good).all_api_keys()] == ["ci"]
    bad = folder / "bad.json"
    bad.write_text('[{"name": "ci", "key": "short", "scopes": ["read"]}]')
    with pytest.raises(ConfigurationError, match=r"key 0\.key|key key"):
        QuerySettings(api_keys_file=bad).all_api_keys()
    with pytest.raises(ConfigurationError, match="cannot read"):
        QuerySettings(api_keys_file=folder / "none.json").all_api_keys()


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ([], "body"),
        ({"payload": {}}, "aggregate_id"),
        ({"aggregate_id": 5, "payload": {}}, "aggregate_id"),
        ({"aggregate_id": "a", "payload": []}, "payload"),
        ({"aggregate_id": "a", "expected_version": -1}, "expected_version"),
        ({"aggregate_id": "a", "expected_version": True}, "expected_version"),
        ({"aggregate_id": "a", "payload": {"metadata": {}}}, "payload.metadata"),
        ({"aggregate_id": "a", "extra": 1}, "extra"),
    ],
)
def test_malformed_command_requests_name_the_member(body: object, parameter: str) -> None:
    with pytest.raises(Problem) as refused:
        parse_request("PlaceOrder", body, None)
    assert refused.value.status == 422 and refused.value.members["parameter"] == parameter


def test_rejections_map_to_conflict_or_unprocessable() -> None:
    def rejected(code: str) -> CommandResult:
        return CommandResult("c", "REJECTED", "a", None, [], code, "why", 3)

    assert rejection_problem(rejected("VERSION_CONFLICT")).status == 409
    assert rejection_problem(rejected("INVALID_COMMAND")).status == 422
    assert rejection_problem(rejected("VERSION_CONFLICT")).members["current_version"] == 3
