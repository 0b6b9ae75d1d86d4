"""A small Python client for producers of commands: ``send`` and ``send_and_wait``.

Commands are produced with an idempotent producer, keyed by aggregate id, in the
Confluent wire format. ``send_and_wait`` listens on ``command-results``
(read_committed, so only results of committed transactions are seen) from the
moment before the command is sent, and returns the result with the same id.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from core.domain import load_domain
from core.errors import PipelineError
from core.settings import Settings
from schemas.catalog import SchemaCatalog
from schemas.registry_client import RegistryClient
from schemas.serde import AvroSerde


@dataclass(frozen=True)
class CommandResult:
    command_id: str
    status: str
    aggregate_id: str | None
    version: int | None
    event_ids: list[str]
    rejection_code: str | None
    rejection_reason: str | None
    current_version: int | None

    @property
    def accepted(self) -> bool:
        return self.status == "ACCEPTED"


class CommandTimeoutError(PipelineError):
    """No result arrived in time: is a command processor running (``cqrs worker``)?"""


class UnknownCommandError(PipelineError, ValueError):
    """The name is not one of the domain's commands."""


class CommandClient:
    def __init__(self, settings: Settings, catalog: SchemaCatalog | None = None) -> None:
        self._settings = settings
        domain = load_domain(settings.domain)
        self._namespace = domain.commands_namespace + "."
        self._catalog = catalog or SchemaCatalog.for_domain(domain)
        self._serde = AvroSerde(RegistryClient(settings.registry), self._catalog, domain.upcasters)
        prefix = settings.kafka.topic_prefix
        self._commands_topic = prefix + "commands"
        self._results_topic = prefix + "command-results"
        self._producer_config = {
            **settings.kafka.confluent_config(),
            "enable.idempotence": True,
            # Kafka's default (Java) partitioner, the workers' too: one partition per aggregate
            # whoever produces; librdkafka's own default would place keys elsewhere.
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 2,
        }
        # Made on the first send: a client refused a command name never connects.
        self._producer: Producer | None = None
        self._waiting: dict[str, Future[CommandResult]] = {}
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()

    def _command_record(self, command: str) -> str:
        """The Avro record of a command named plainly (``PlaceOrder``) or in full."""
        full_name = command if "." in command else self._namespace + command
        if full_name not in self._catalog or not full_name.startswith(self._namespace):
            raise UnknownCommandError(
                f"{command!r} is not a command of this domain; one of "
                f"{', '.join(self.command_names())}"
            )
        return full_name

    def send(
        self,
        command: str,
        aggregate_id: str,
        payload: dict[str, Any],
        *,
        command_id: str | None = None,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        issued_by: str = "cqrs-client",
    ) -> str:
        """Produce a command (e.g. ``"PlaceOrder"``); returns its command id once durable."""
        full_name = self._command_record(command)
        if not isinstance(payload, dict):
            raise TypeError(f"the fields of {command} must be a dict, not {type(payload).__name__}")
        command_id = command_id or str(uuid.uuid4())
        metadata = {
            "command_id": command_id,
            "aggregate_id": aggregate_id,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "expected_version": expected_version,
            "issued_at": datetime.now(UTC),
            "issued_by": issued_by,
        }
        value = self._serde.encode(
            self._commands_topic, full_name, {"metadata": metadata, **payload}
        )
        errors: list[KafkaError] = []
        if self._producer is None:
            self._producer = Producer(self._producer_config)
        self._producer.produce(
            self._commands_topic,
            key=aggregate_id.encode(),
            value=value,
            on_delivery=lambda error, _msg: errors.append(error) if error else None,
        )
        self._producer.flush(30)
        if errors:
            raise PipelineError(f"command {command_id} was not delivered: {errors[0].str()}")
        return command_id

    def send_and_wait(
        self,
        command: str,
        aggregate_id: str,
        payload: dict[str, Any],
        *,
        timeout_s: float = 30.0,
        **options: Any,
    ) -> CommandResult:
        """Send a command and return its result (accepted or rejected)."""
        self._command_record(command)  # an unknown name fails now, not after listening
        self._start_listening()
        command_id = options.pop("command_id", None) or str(uuid.uuid4())
        future: Future[CommandResult] = Future()
        with self._lock:
            self._waiting[command_id] = future
        try:
            self.send(command, aggregate_id, payload, command_id=command_id, **options)
            return future.result(timeout=timeout_s)
        except TimeoutError:
            raise CommandTimeoutError(
                f"no result for command {command_id} within {timeout_s:.0f}s; is a command "
                "processor running (cqrs worker)?"
            ) from None
        finally:
            with self._lock:
                self._waiting.pop(command_id, None)

    def wait_for_projection(
        self, projection: str, aggregate_id: str, version: int, timeout_s: float = 30.0
    ) -> int:
        """Block until a read model shows ``version`` of the aggregate (read-your-writes)."""
        from sinks.read_your_writes import wait_for_projection

        return wait_for_projection(self._settings, projection, aggregate_id, version, timeout_s)

    def command_names(self) -> list[str]:
        namespace = self._namespace
        return [name.removeprefix(namespace) for name in self._catalog.records(namespace)]

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.join(10)
        if self._producer is not None:
            self._producer.flush(10)

    def _start_listening(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=self._listen, name="command-results", daemon=True
            )
            self._listener.start()
        if not self._ready.wait(30):
            raise CommandTimeoutError(f"could not start listening on {self._results_topic}")

    def _listen(self) -> None:
        consumer = Consumer(
            {
                **self._settings.kafka.confluent_config(),
                "group.id": f"cqrs-client-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            metadata = consumer.list_topics(self._results_topic, timeout=10).topics[
                self._results_topic
            ]
            partitions = []
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self._results_topic, partition), timeout=10
                )
                partitions.append(TopicPartition(self._results_topic, partition, high))
            consumer.assign(partitions)
            self._ready.set()
            while not self._closed.is_set():
                message = consumer.poll(0.2)
                if message is not None and not message.error():
                    self._deliver(message)
        finally:
            consumer.close()

    def _deliver(self, message: Message) -> None:
        key = message.key()
        command_id = key.decode() if key else ""
        with self._lock:
            future = self._waiting.get(command_id)
        if future is None or future.done():
            return
        value = self._serde.decode(message.value() or b"").value
        rejection = value.get("rejection") or {}
        future.set_result(
            CommandResult(
                command_id=value["command_id"],
                status=value["status"],
                aggregate_id=value.get("aggregate_id"),
                version=value.get("version"),
                event_ids=list(value.get("event_ids", [])),
                rejection_code=rejection.get("code"),
                rejection_reason=rejection.get("reason"),
                current_version=rejection.get("current_version"),
            )
        )
