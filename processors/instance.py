"""The transactional id of a worker process: stable across its restarts, unique among live ones.

A worker's one transactional producer is named ``<app>-<host>-<dir>-<slot>``:
``<dir>`` is a digest of the app's data directory (two workers on one host with
directories of their own must not share an id: each would fence the other), and
the slot is the lowest number whose lock file in that directory no other live
process holds (the kernel releases the lock when a process dies, even by
SIGKILL). A restarted worker therefore takes its predecessor's id, and starting
that producer aborts at once whatever transaction the predecessor left open,
instead of leaving it to the transaction timeout. On Kubernetes the host is the
StatefulSet pod's stable name and each pod has a volume of its own: the id stays
the same for the pod's life.
"""

from __future__ import annotations

import fcntl
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_SLOTS = 1024


@dataclass(frozen=True)
class InstanceClaim:
    transactional_id: str
    lock: IO[bytes]  # held open for the life of the process
    slot: int  # also names the instance's local state store

    def release(self) -> None:
        self.lock.close()


def claim_transactional_id(app_id: str, datadir: Path) -> InstanceClaim:
    slots = datadir / "instances"
    slots.mkdir(parents=True, exist_ok=True)
    directory = hashlib.sha256(str(datadir.resolve()).encode()).hexdigest()[:8]
    for slot in range(MAX_SLOTS):
        lock = (slots / f"slot-{slot}.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return InstanceClaim(f"{app_id}-{socket.gethostname()}-{directory}-{slot}", lock, slot)
    raise RuntimeError(
        f"{MAX_SLOTS} worker processes already hold a slot in {slots}: give this one a "
        "data directory of its own (CQRS_PROCESSOR__DATADIR)"
    )
