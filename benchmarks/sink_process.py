"""A sink measured as it is deployed: ``cqrs sink run <projection>`` in processes of its own.

Run inside the benchmark's process, a sink would share the interpreter with the
benchmark's backlog and baseline rows (hundreds of thousands of live objects the
garbage collector walks again and again) and with its polling thread. Deployed,
a sink process holds only its own work; this runs it that way, configured
through the environment like a pod, with one process per replica.

The rate is taken at steady state: from the first batch made durable to the
last, so process start-up (imports, group join, positioning) is not counted,
just as the baselines do not count creating their table or index.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cqrs.children import cqrs_process

SINK_READY = "sink {projection} consuming"


@contextmanager
def sink_processes(projection: str, env: Mapping[str, str], replicas: int = 1) -> Iterator[None]:
    """``replicas`` processes of one sink (one consumer group), stopped on the way out; their
    logs go to a temporary directory, named in the error if one does not start."""
    logs = Path(tempfile.mkdtemp(prefix="cqrs-bench-sink-"))
    with ExitStack() as stack:
        for replica in range(replicas):
            stack.enter_context(
                cqrs_process(
                    ["sink", "run", projection],
                    logs / f"{projection}-{replica}.log",
                    [SINK_READY.format(projection=projection)],
                    {**env, "CQRS_OBSERVABILITY__PORT": "0"},
                )
            )
        yield


def steady_rate(
    applied: Callable[[], int],
    total: int,
    finished: Callable[[int], bool] | None = None,
    poll_s: float = 0.1,
) -> float:
    """Items per second between the first poll that sees progress and the one that sees
    the end: ``applied()`` returns how many items are durable so far, and the end is
    ``total`` of them, or ``finished(applied)`` when given."""
    first: tuple[float, int] | None = None
    last_report = time.monotonic()
    while True:
        done = applied()
        now = time.monotonic()
        if first is None and done > 0:
            first = (now, done)
        complete = finished(done) if finished else done >= total
        if complete and first is not None:
            if now - first[0] <= 0 or done == first[1]:
                raise RuntimeError("the sink applied everything in one batch; use more events")
            return (done - first[1]) / (now - first[0])
        if now - last_report >= 10:
            print(f"  … {done:,}/{total:,} applied", flush=True)
            last_report = now
        time.sleep(poll_s)
