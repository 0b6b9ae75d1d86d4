"""The transactional id of a worker process: stable across its restarts, unique among live ones.

A worker's one transactional producer is named ``<app>-<host>-<slot>``. The slot is
the lowest number whose lock file in the app's data directory no other live
process holds (the kernel releases the lock when a process dies, even by
SIGKILL). A restarted worker therefore takes its predecessor's id, and starting
that producer aborts at once whatever transaction the predecessor left open,
instead of leaving it to the transaction timeout. On Kubernetes the host is the
StatefulSet pod's stable name and each pod has a volume of its own: the id is
``<app>-<pod>-0`` for life.
"""

from __future__ import annotations

import fcntl
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_SLOTS = 1024


@dataclass(frozen=True)
class InstanceClaim:
    transactional_id: str
    lock: IO[bytes]  # held open for the life of the process

    def release(self) -> None:
        self.lock.close()


def claim_transactional_id(app_id: str, datadir: Path) -> InstanceClaim:
    slots = datadir / "instances"
    slots.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        lock = (slots / f"slot-{slot}.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return InstanceClaim(f"{app_id}-{socket.gethostname()}-{slot}", lock)
    raise RuntimeError(
        f"{MAX_SLOTS} worker processes already hold a slot in {slots}: give this one a "
        "data directory of its own (CQRS_PROCESSOR__DATADIR)"
    )
