"""The idempotency window's table layout: the newest result in the record, older ones as
entries, exactly ``window`` results remembered whatever the window's size."""

from __future__ import annotations

import pytest

from processors.command_processing import AggregateRecord, apply_writes, window_writes
from processors.table_keys import parse, result_key, slot_key

KEY = b"Order:o-1"


def decide_all(count: int, window: int, table: dict[bytes, bytes]) -> AggregateRecord:
    """``count`` commands c-0, c-1, ... decided in turn, the table updated as the loop does."""
    record = AggregateRecord("Order", 0, {"lines": []})
    for number in range(count):
        record, writes = window_writes(
            KEY,
            record,
            command_id=f"c-{number}",
            result=f"result-{number}".encode(),
            table=table.get,
            window=window,
        )
        assert writes[-1] == (KEY, record.to_bytes())  # the record is written last
        apply_writes(table, writes)
    return record


def remembered(record: AggregateRecord, table: dict[bytes, bytes]) -> dict[str, bytes]:
    """Every command id the window answers, with the result it answers."""
    answers = {
        parse(key.decode()).detail: value
        for key, value in table.items()
        if parse(key.decode()).entry == "~result"
    }
    if record.last is not None:
        answers[record.last[0]] = record.last[1]
    return answers


@pytest.mark.parametrize("window", [1, 2, 3, 5, 1000])
@pytest.mark.parametrize("count", [1, 2, 3, 7, 20])
def test_the_window_remembers_exactly_the_newest_results(window: int, count: int) -> None:
    table: dict[bytes, bytes] = {}
    record = decide_all(count, window, table)

    kept = range(max(0, count - window), count)
    assert remembered(record, table) == {f"c-{n}": f"result-{n}".encode() for n in kept}
    # One record, and for each older remembered result its entry and its slot.
    assert len(table) == 1 + 2 * (len(kept) - 1)
    assert record.decided == count


def test_an_aggregate_that_decided_one_command_is_one_entry() -> None:
    table: dict[bytes, bytes] = {}
    decide_all(1, 1000, table)
    assert list(table) == [KEY]


def test_the_record_carries_the_newest_result_through_its_bytes() -> None:
    record = AggregateRecord("Order", 3, {"lines": []}, 4, ("c-3", b"\x00\xffresult"))
    kinds = {"Order": _Kind()}
    assert AggregateRecord.from_bytes(record.to_bytes(), kinds) == record  # type: ignore[arg-type]


def test_a_record_written_before_results_rode_along_keeps_its_window() -> None:
    """The old layout: every result an entry, slots numbered ``% window``, no ``last``."""
    window = 3
    table: dict[bytes, bytes] = {}
    for number in range(5):  # c-2, c-3, c-4 remembered in slots 2, 0, 1
        table[result_key(KEY, f"c-{number}")] = f"result-{number}".encode()
        table[slot_key(KEY, number % window)] = f"c-{number}".encode()
    for number in range(2):
        table.pop(result_key(KEY, f"c-{number}"))
    record = AggregateRecord("Order", 5, {"lines": []}, 5)

    record, writes = window_writes(
        KEY, record, command_id="c-5", result=b"result-5", table=table.get, window=window
    )
    apply_writes(table, writes)

    answers = remembered(record, table)
    assert {"c-2", "c-3", "c-4", "c-5"} <= set(answers)  # nothing of the window forgotten
    record = decide_all_from(record, table, range(6, 12), window)
    # Displaced by newer results: only the newest three and, at most, the old slot 2.
    assert set(remembered(record, table)) - {"c-2"} == {"c-9", "c-10", "c-11"}


def decide_all_from(
    record: AggregateRecord, table: dict[bytes, bytes], numbers: range, window: int
) -> AggregateRecord:
    for number in numbers:
        record, writes = window_writes(
            KEY,
            record,
            command_id=f"c-{number}",
            result=f"result-{number}".encode(),
            table=table.get,
            window=window,
        )
        apply_writes(table, writes)
    return record


class _Kind:
    initial: dict[str, list[str]] = {"lines": []}  # noqa: RUF012
