"""The embedded registry's rules, without Kafka or HTTP: ids, versions, deletes, modes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from schemas.compatibility import CompatibilityMode
from schemas.registry.state import ApiError, LogRecord, RegistryState, config_key, parse_mode


def schema(*fields: str, name: str = "E") -> str:
    return json.dumps(
        {
            "type": "record",
            "name": name,
            "fields": [{"name": field, "type": "string", "default": ""} for field in fields],
        }
    )


def write(state: RegistryState, decided: tuple[object, list[LogRecord]]) -> object:
    answer, records = decided
    for key, value in records:
        state.apply(key, value)
    return answer


def test_registering_the_same_schema_again_returns_the_same_id_and_writes_nothing() -> None:
    state = RegistryState()
    first = write(state, state.register("s", schema("a")))
    again_id, records = state.register("s", json.dumps(json.loads(schema("a")), indent=4))
    assert again_id == first
    assert records == []


def test_the_same_schema_under_another_subject_shares_the_id() -> None:
    state = RegistryState()
    first = write(state, state.register("s1", schema("a")))
    second = write(state, state.register("s2", schema("a")))
    third = write(state, state.register("s2", schema("a", "b")))
    assert second == first
    assert third == 2
    assert [v.version for v in state.live_versions("s2")] == [1, 2]


def test_incompatible_registration_is_409_with_the_reason() -> None:
    state = RegistryState()
    write(state, state.register("s", schema("a")))
    state.apply(*_config("s", CompatibilityMode.BACKWARD))
    breaking = json.dumps({"type": "record", "name": "E", "fields": [{"name": "a", "type": "int"}]})
    with pytest.raises(ApiError) as raised:
        state.register("s", breaking)
    assert (raised.value.status, raised.value.code) == (409, 409)
    assert "incompatible" in raised.value.message


def test_malformed_schema_is_422_42201() -> None:
    with pytest.raises(ApiError) as raised:
        RegistryState().register("s", '{"type": "record"')
    assert (raised.value.status, raised.value.code) == (422, 42201)


def test_unknown_subject_version_and_id_are_404_with_their_codes() -> None:
    state = RegistryState()
    write(state, state.register("s", schema("a")))
    calls: list[tuple[Callable[[], object], int]] = [
        (lambda: state.live_versions("nope"), 40401),
        (lambda: state.version("s", "7"), 40402),
        (lambda: state.schema(99), 40403),
        (lambda: state.find("s", schema("zzz")), 40403),
    ]
    for call, code in calls:
        with pytest.raises(ApiError) as raised:
            call()
        assert (raised.value.status, raised.value.code) == (404, code)
    with pytest.raises(ApiError) as raised:
        state.version("s", "zero")
    assert (raised.value.status, raised.value.code) == (422, 42202)


def test_soft_then_permanent_delete_of_a_subject() -> None:
    state = RegistryState()
    write(state, state.register("s", schema("a")))
    write(state, state.register("s", schema("a", "b")))
    with pytest.raises(ApiError) as raised:
        state.delete_subject("s", permanent=True)
    assert raised.value.code == 40405

    assert write(state, state.delete_subject("s", permanent=False)) == [1, 2]
    with pytest.raises(ApiError):
        state.live_versions("s")
    assert [v.version for v in state.live_versions("s", include_deleted=True)] == [1, 2]
    with pytest.raises(ApiError) as raised:
        state.delete_subject("s", permanent=False)
    assert raised.value.code == 40404
    assert state.schema(1)  # ids stay resolvable after a soft delete

    assert write(state, state.delete_subject("s", permanent=True)) == [1, 2]
    assert "s" not in state.subjects


def test_deleting_one_version_keeps_version_numbers_increasing() -> None:
    state = RegistryState()
    write(state, state.register("s", schema("a")))
    write(state, state.register("s", schema("a", "b")))
    assert write(state, state.delete_version("s", "2", permanent=False)) == 2
    with pytest.raises(ApiError) as raised:
        state.delete_version("s", "2", permanent=False)
    assert raised.value.code == 40406
    write(state, state.register("s", schema("a", "c")))
    assert [v.version for v in state.live_versions("s")] == [1, 3]
    assert state.version("s", "latest").version == 3


def test_modes_per_subject_fall_back_to_global_then_default() -> None:
    state = RegistryState()
    assert state.mode("s") is CompatibilityMode.BACKWARD
    state.apply(*_config(None, CompatibilityMode.FULL))
    assert state.mode("s") is CompatibilityMode.FULL
    state.apply(*_config("s", CompatibilityMode.NONE))
    assert state.mode("s") is CompatibilityMode.NONE
    state.apply(config_key("s"), None)
    assert state.mode("s") is CompatibilityMode.FULL
    with pytest.raises(ApiError) as raised:
        parse_mode("SIDEWAYS")
    assert raised.value.code == 42203


def test_replaying_the_log_rebuilds_the_same_state() -> None:
    state = RegistryState()
    log: list[LogRecord] = []
    for decided in (state.register("s", schema("a")), state.register("t", schema("b"))):
        _, records = decided
        log += records
        for key, value in records:
            state.apply(key, value)
    _, records = state.delete_subject("t", permanent=False)
    log += records
    for key, value in records:
        state.apply(key, value)

    replayed = RegistryState()
    for key, value in log:
        replayed.apply(
            json.loads(json.dumps(key)), None if value is None else json.loads(json.dumps(value))
        )
    assert replayed.subjects == state.subjects
    assert replayed.schemas == state.schemas


def _config(subject: str | None, mode: CompatibilityMode) -> LogRecord:
    return config_key(subject), {"compatibilityLevel": mode.value}
