"""How every long-running process logs: text for people, or one JSON object per line.

``CQRS_OBSERVABILITY__LOG_FORMAT=json`` makes each record a JSON object with
``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``process`` and,
when an exception is logged, ``exception`` (its traceback), which log
collectors (Loki, Elasticsearch, Cloud Logging) index without parsing rules.
librdkafka's lines (``core.kafka_logs``) add ``kafka_facility`` and
``kafka_client``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from core.kafka_logs import LOGGER_NAME as LIBRDKAFKA_LOGGER

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
# httpx logs a line per registry request; the pool repeats each failed connection
# that the sink runner already reports once per retry.
QUIET = {"httpx": logging.WARNING, "psycopg.pool": logging.ERROR}
# Fields a record may carry as ``extra``, written when present.
EXTRA_FIELDS = ("kafka_facility", "kafka_client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """The root logger's one handler (stderr), in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.NOTSET)  # undo keep_librdkafka_back


def keep_librdkafka_back() -> None:
    """For one-shot commands, which say what failed in one line of their own:
    librdkafka's lines below CRITICAL are dropped (``configure_logging`` lets
    them through again, for the long-running processes)."""
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.CRITICAL)
