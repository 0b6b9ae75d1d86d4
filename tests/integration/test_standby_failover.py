"""A warm standby takes over: the active worker SIGKILLed for good under a stream, and the
survivor, which followed its partitions' changelog, reads only the records it was behind.

Two workers with local state (``sqlite://``) and one standby replica each: each follows
the other's partitions into its own store. After the kill the group moves the dead
worker's partitions to the survivor once the session times out; their first results
must come within the session timeout plus a few seconds, their restores must read only a
tail, and everything sent must be decided exactly once, with the live table equal to a
replay of the log.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from core.settings import Settings
from processors.partitioning import partition_for
from tests.integration.command_stream import CommandStream, check_exactly_once
from tests.integration.pipeline import Pipeline, wait_until
from tests.integration.test_rebalance_pauses import ResultClock

PARTITIONS = 6
SESSION_S = 6
TAKEOVER_EXTRA_S = 4.0  # the target is 2 s over the session; room for this noisy machine
TAIL_MAX_RECORDS = 2_000  # a standby caught up is a few commits behind


def _partitions(text: str, pattern: str) -> set[int]:
    return {int(p) for p in re.findall(pattern, text)}


def test_a_standby_takes_over_a_killed_worker_reading_only_the_tail(
    local_stack: Settings, tmp_path: Path
) -> None:
    pipeline = Pipeline.create(local_stack, tmp_path, tmp_path / "first", partitions=PARTITIONS)
    standby = {
        "CQRS_PROCESSOR__STORE": "sqlite://",
        "CQRS_PROCESSOR__STANDBY_REPLICAS": "1",
        "CQRS_PROCESSOR__SESSION_TIMEOUT_S": str(SESSION_S),
    }
    first = pipeline.process("worker", name="first")
    first.env = {**first.env, **standby}
    survivor = pipeline.process("worker", name="survivor")
    survivor.env = {
        **survivor.env,
        **standby,
        "CQRS_PROCESSOR__DATADIR": str(tmp_path / "survivor"),
    }
    changelog = re.escape(f"{pipeline.settings.processor.app_id}-aggregates-changelog")
    stream = CommandStream(pipeline)
    clock = ResultClock(pipeline)
    try:
        first.start()
        survivor.start()
        stream.start(per_second=200)

        # Both own partitions, and the survivor follows every one the first owns.
        def caught_up() -> set[int] | None:
            text = survivor.output()
            owned = {
                int(p)
                for line in text.splitlines()
                if "cqrs.loop: assigned" in line
                for p in re.findall(r"commands\[(\d+)\]", line)
            }
            followed = _partitions(text, rf"standby {changelog}\[(\d+)\] caught up")
            others = set(range(PARTITIONS)) - owned
            return followed if owned and others and others <= followed else None

        followed = wait_until(caught_up, 60, "the survivor's standbys caught up") or set()
        time.sleep(3)  # under the stream, the standbys follow the changelog as it grows
        # Partitions taken at start-up were promoted too (from empty copies): only what
        # the survivor logs from the kill on counts.
        since = survivor.log.stat().st_size
        first.kill()
        killed = time.monotonic()
        promoted = (
            wait_until(
                lambda: (
                    _partitions(survivor.output(since), rf"standby {changelog}\[(\d+)\] promoted")
                    or None
                ),
                SESSION_S + 30,
                "a standby promoted",
            )
            or set()
        )
        time.sleep(4)
        stream.stop()
        check_exactly_once(pipeline, stream)
    finally:
        clock.close()
        stream.stop()
        survivor.stop()
        first.kill()

    log = survivor.output(since)
    assert promoted <= followed, f"promoted {promoted}, followed {followed}"
    # Each promoted partition was loaded from the local store and only its tail read.
    for partition in promoted:
        loaded = re.search(rf"loaded {changelog}\[{partition}\] from local state", log)
        assert loaded, f"partition {partition} was not loaded from the standby's copy"
        restored = re.findall(rf"restored {changelog}\[{partition}\]: (\d+) records", log)
        assert not restored or int(restored[-1]) <= TAIL_MAX_RECORDS, (partition, restored)
    # The first result of each moved partition after the kill.
    firsts: dict[int, float] = {}
    for sku, commands in stream.sent.items():
        partition = partition_for(sku.encode(), PARTITIONS)
        if partition in promoted:
            after = [clock.seen[c] - killed for c in commands if clock.seen.get(c, 0) > killed]
            if after:
                firsts[partition] = min(firsts.get(partition, 1e9), *after)
    print(f"first result after the kill per moved partition (s): {firsts}")
    assert set(firsts) == promoted
    assert max(firsts.values()) <= SESSION_S + TAKEOVER_EXTRA_S, firsts
    replay = pipeline.cli("replay", "state")
    assert replay.returncode == 0, replay.stdout + replay.stderr
