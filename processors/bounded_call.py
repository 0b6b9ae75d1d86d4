"""A transactional call that cannot hold the loop longer than its time allows.

librdkafka's transactional calls take a timeout, but some of their requests to a
coordinator are not bounded by it: with a coordinator moving, one
``send_offsets_to_transaction(…, 5 s)`` has been seen to return after two and a
half minutes, and an ``abort_transaction`` after ten (librdkafka issues 3779
and 5456). All that time the worker decides nothing and its liveness beat stops.
So each call runs on a thread of its own, and the loop waits for it only as long
as the call's timeout and a grace period; past that the call counts as timed out
and the loop replaces the producer, whose successor's ``init_transactions``
fences whatever the abandoned call still does. The abandoned thread ends when
librdkafka finally returns; it holds the old producer until then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.errors import CallOverranError

GRACE_S = 5.0  # beyond a call's own timeout


def call_within(
    call: Callable[[float], object], timeout_s: float, name: str, grace_s: float = GRACE_S
) -> None:
    """``call(timeout_s)``, its exception raised here; ``CallOverranError`` if it has not
    returned ``grace_s`` after its timeout."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call(timeout_s)
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"cqrs-{name}", daemon=True).start()
    if not done.wait(timeout_s + grace_s):
        raise CallOverranError(f"{name} did not return within {timeout_s + grace_s:.1f} s")
    if failure:
        raise failure[0]
