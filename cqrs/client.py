"""A small Python client for producers of commands: ``send`` and ``send_and_wait``.

Commands are produced with an idempotent producer, keyed by aggregate id, in the
Confluent wire format. ``send_and_wait`` listens on ``command-results``
(read_committed, so only results of committed transactions are seen) from the
moment before the command is sent, and returns the result with the same id.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from core import tracing
from core.domain import load_domain
from core.errors import CommandTimeoutError, PipelineError, UnknownCommandError
from core.settings import Settings
from cqrs.tracing import SendTracing
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
    command_type: str | None = None  # the command's Avro record

    @property
    def accepted(self) -> bool:
        return self.status == "ACCEPTED"


class CommandClient:
    def __init__(
        self, settings: Settings, catalog: SchemaCatalog | None = None, *, remember: int = 0
    ) -> None:
        """``remember``: how many results of anyone's commands to keep for ``recent_result``
        (0: only the results this client waits for are decoded)."""
        self._settings = settings
        self._remember = remember
        self._recent: OrderedDict[str, CommandResult] = OrderedDict()
        domain = load_domain(settings.domain)
        self._namespace = domain.commands_namespace + "."
        self._catalog = catalog or SchemaCatalog.for_domain(domain)
        self._serde = AvroSerde(RegistryClient(settings.registry), self._catalog, domain.upcasters)
        prefix = settings.kafka.topic_prefix
        # Each command to the topic of its aggregate type's writer (one shared topic, or
        # one per aggregate type); a record no aggregate declares goes to the shared one,
        # where the worker rejects it with its reason.
        self._command_topics = {
            name: prefix + domain.writer_of(aggregate.name).commands
            for name, (aggregate, _) in domain.command_types.items()
        }
        self._undeclared_topic = (
            prefix + domain.writers[0].commands if domain.topic_layout == "shared" else None
        )
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
        tracing.configure(settings.observability, "cqrs-client")  # unless the process did
        tracer = tracing.tracer()
        self._tracing = None if tracer is None else SendTracing(tracer)

    def command_record(self, command: str) -> str:
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
        command_id = command_id or str(uuid.uuid4())
        errors: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                errors.append(error)

        producer = self._produce(
            command,
            aggregate_id,
            payload,
            command_id,
            delivered,
            expected_version=expected_version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            issued_by=issued_by,
        )
        producer.flush(30)
        if errors:
            raise PipelineError(f"command {command_id} was not delivered: {errors[0].str()}")
        return command_id

    def _produce(
        self,
        command: str,
        aggregate_id: str,
        payload: dict[str, Any],
        command_id: str,
        on_delivery: Any,
        *,
        expected_version: int | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        issued_by: str = "cqrs-client",
    ) -> Producer:
        full_name = self.command_record(command)
        if not isinstance(payload, dict):
            raise TypeError(f"the fields of {command} must be a dict, not {type(payload).__name__}")
        metadata = {
            "command_id": command_id,
            "aggregate_id": aggregate_id,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "expected_version": expected_version,
            "issued_at": datetime.now(UTC),
            "issued_by": issued_by,
        }
        topic = self._command_topics.get(full_name, self._undeclared_topic)
        if topic is None:
            raise UnknownCommandError(
                f"{full_name} has a schema but no aggregate of this domain declares it"
            )
        value = self._serde.encode(topic, full_name, {"metadata": metadata, **payload})
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self._producer_config)
            producer = self._producer
        if self._tracing is not None:
            with self._tracing.send(full_name, metadata, topic) as headers:
                producer.produce(
                    topic,
                    key=aggregate_id.encode(),
                    value=value,
                    headers=headers,
                    on_delivery=on_delivery,
                )
            return producer
        producer.produce(topic, key=aggregate_id.encode(), value=value, on_delivery=on_delivery)
        return producer

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
        self.command_record(command)  # an unknown name fails now, not after listening
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

    def submit(
        self, command: str, aggregate_id: str, payload: dict[str, Any], **options: Any
    ) -> Future[CommandResult]:
        """Produce a command without blocking; the future holds its result, or the error of
        its delivery. For callers that keep many commands in flight (the HTTP gateway)."""
        self.command_record(command)
        self._start_listening()
        command_id = options.pop("command_id", None) or str(uuid.uuid4())
        future: Future[CommandResult] = Future()
        with self._lock:
            self._waiting[command_id] = future

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None and not future.done():
                future.set_exception(
                    PipelineError(f"command {command_id} was not delivered: {error.str()}")
                )

        try:
            self._produce(command, aggregate_id, payload, command_id, delivered, **options)
        except BaseException:
            self.forget(command_id)
            raise
        future.add_done_callback(lambda _: self.forget(command_id))
        return future

    def forget(self, command_id: str) -> None:
        """Stop waiting for a command's result (it was answered or given up)."""
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
                if self._producer is not None:
                    self._producer.poll(0)  # delivery reports of submitted commands
                message = consumer.poll(0.05 if self._waiting else 0.2)
                if message is not None and not message.error():
                    self._deliver(message)
        finally:
            consumer.close()

    def recent_result(self, command_id: str) -> CommandResult | None:
        """A result seen since listening began, among the last ``remember`` (see __init__)."""
        self._start_listening()
        with self._lock:
            return self._recent.get(command_id)

    def _deliver(self, message: Message) -> None:
        key = message.key()
        command_id = key.decode() if key else ""
        with self._lock:
            future = self._waiting.get(command_id)
        if (future is None or future.done()) and not self._remember:
            return
        result = self._result_of(message)
        if self._remember:
            with self._lock:
                self._recent[command_id] = result
                self._recent.move_to_end(command_id)
                while len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
        if future is not None and not future.done():
            future.set_result(result)

    def _result_of(self, message: Message) -> CommandResult:
        value = self._serde.decode(message.value() or b"").value
        rejection = value.get("rejection") or {}
        return CommandResult(
            command_id=value["command_id"],
            status=value["status"],
            aggregate_id=value.get("aggregate_id"),
            version=value.get("version"),
            event_ids=list(value.get("event_ids", [])),
            rejection_code=rejection.get("code"),
            rejection_reason=rejection.get("reason"),
            current_version=rejection.get("current_version"),
            command_type=value.get("command_type"),
        )
