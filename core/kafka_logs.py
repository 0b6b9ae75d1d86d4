"""librdkafka's own log lines through Python logging, in every process.

Every client's configuration (``KafkaSettings.confluent_config``) carries
``LIBRDKAFKA_LOG`` as its ``logger``. confluent-kafka then stops librdkafka
writing ``%3|...|FAIL|...`` lines to stderr and calls
``logger.log(level, "%s [%s] %s", facility, client, text)`` instead, with the
syslog level already mapped (0-2 CRITICAL, 3 ERROR, 4 WARNING, 5-6 INFO,
7 DEBUG). The lines land on ``cqrs.librdkafka.producer`` or
``cqrs.librdkafka.consumer`` (an admin client is a producer handle to
librdkafka), in the process's text or JSON format, the JSON records with
``kafka_facility`` and ``kafka_client`` fields.

Two things come with that:

- confluent-kafka queues the lines and hands them over only inside the client's
  ``poll``/``consume``/``flush`` calls. Producers and consumers are polled by
  the code that uses them; admin clients are not, so the product passes each
  through ``served`` and a daemon thread polls them (a line of a client
  destroyed before the next round is lost).
- While a broker is down librdkafka logs the same failed connection on every
  reconnect (about 20 lines a second per client, many clients per process).
  ``RepeatGate`` lets one identical line through per ``REPEAT_WINDOW_S`` and
  says how many it held back when it lets the next one through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

LOGGER_NAME = "cqrs.librdkafka"
REPEAT_WINDOW_S = 30.0
SERVE_INTERVAL_S = 1.0
# Durations in a line ("after 0ms in state CONNECT") differ between repeats.
_DURATION = re.compile(r"\d+(\.\d+)?\s?ms\b")
_KINDS = ("producer", "consumer")


class RepeatGate:
    """Admits a key once per window; counts the repeats held back in between."""

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key: (admitted at, held back)

    def admit(self, key: Hashable) -> int | None:
        """None to hold the line back, else how many repeats were held back before it."""
        now = self._clock()
        with self._lock:
            if len(self._seen) > 1000:  # forget keys whose window has passed
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._window_s}
            admitted_at, held = self._seen.get(key, (float("-inf"), 0))
            if now - admitted_at < self._window_s:
                self._seen[key] = (admitted_at, held + 1)
                return None
            self._seen[key] = (now, 0)
            return held


class LibrdkafkaLog:
    """The object confluent-kafka calls as ``logger.log(level, msg, *args)``."""

    def __init__(self, gate: RepeatGate | None = None) -> None:
        self._gate = gate or RepeatGate()

    def log(self, level: int, msg: str, *args: object) -> None:
        if len(args) == 3:
            facility, client, text = (str(arg) for arg in args)
        else:  # not confluent-kafka's call shape: pass it on as it is
            facility, client, text = "", "", msg % args if args else msg
        logger = logging.getLogger(_logger_name(client))
        if not logger.isEnabledFor(level):
            return
        held = self._gate.admit((level, facility, _DURATION.sub("Nms", text)))
        if held is None:
            return
        line = f"{facility} [{client}] {text}" if facility else text
        if held:
            line += f" ({held} identical lines held back)"
        logger.log(level, line, extra={"kafka_facility": facility, "kafka_client": client})


def _logger_name(client: str) -> str:
    """``cqrs.librdkafka.consumer`` for ``cqrs-worker#consumer-2``."""
    kind = client.rpartition("#")[2].rpartition("-")[0]
    return f"{LOGGER_NAME}.{kind}" if kind in _KINDS else LOGGER_NAME


LIBRDKAFKA_LOG = LibrdkafkaLog()


class Pollable(Protocol):
    def poll(self, timeout: float = ...) -> object: ...


ClientT = TypeVar("ClientT", bound=Pollable)


class _Server:
    """Polls admin clients now and then so that their queued log lines come out."""

    def __init__(self) -> None:
        self._clients: weakref.WeakSet[Pollable] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, client: Pollable) -> None:
        with self._lock:
            self._clients.add(client)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="librdkafka-logs", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(SERVE_INTERVAL_S)
            self._poll_all()

    def _poll_all(self) -> None:
        # The strong references end with this call: a client dropped meanwhile is
        # destroyed here rather than kept.
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.poll(0)
            except Exception:  # one client's failure must not end the others' logs
                logging.getLogger(LOGGER_NAME).debug("polling for logs failed", exc_info=True)


_SERVER = _Server()


def served(client: ClientT) -> ClientT:
    """The client, polled by a daemon thread for its log lines (for admin clients,
    which nothing else polls); held weakly, so it is destroyed as usual."""
    _SERVER.add(client)
    return client
