"""Apache Kafka in KRaft mode: one node, or three (each a broker and a controller).

Configured for a laptop and for tests: no initial rebalance delay, timed-out
transactions swept every second, and no automatic topic creation (the product
creates its topics with explicit configs; a typo must fail, not create a
topic). One node replicates nothing: replication factor 1 everywhere, including
the transaction state log, so transactions, and with them the workers'
exactly-once, work on one node. Three nodes (``stack.kafka_brokers = 3``) replicate
every topic three times with two in sync required, as a production cluster
would, and fence a silent node after 6 s instead of 9 s, so fault tests see
leaders move quickly.

Node n of three lives in ``<stack home>/kafka-<n>`` (its data, log and pid
file) and listens where ``local_kafka_addresses`` says; the single node keeps
``<stack home>/kafka``.
"""

from __future__ import annotations

import base64
import itertools
import logging
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.errors import StackError
from core.settings import KafkaConfig, Settings, local_kafka_addresses
from deploy.stack.processes import LaunchSpec, tcp_open
from deploy.stack.service import Port, Report, Service
from deploy.stack.toolchain import Jdk, find_jdk, resolve_jars

HEALTH_TOPIC = "__cqrs_stack_health"
_QUIET = logging.getLogger("cqrs.stack.kafka.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_BROKER_CONFIG = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
# A killed worker's open transaction is aborted within a second of its timeout (default 10 s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
log.retention.check.interval.ms=60000
"""

# A killed node is fenced, and its partitions get new leaders, 6 s after its last heartbeat.
_CLUSTER_CONFIG = """\
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
"""


@dataclass(frozen=True)
class KafkaNode:
    """One Kafka process of the local stack: where its broker and controller listen."""

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def kafka_nodes(settings: Settings) -> list[KafkaNode]:
    """The local stack's Kafka nodes, node 1 first (ids 1, 2, 3)."""
    addresses = local_kafka_addresses(
        settings.kafka.bootstrap_servers, settings.stack.kafka_brokers
    )
    controller_ports = settings.stack.kafka_controller_ports()
    return [
        KafkaNode(index + 1, host, port, controller_port)
        for index, ((host, port), controller_port) in enumerate(
            zip(addresses, controller_ports, strict=True)
        )
    ]


def node_directory_name(brokers: int, node_id: int) -> str:
    """``kafka`` for the one node, ``kafka-<n>`` for node n of three."""
    return "kafka" if brokers == 1 else f"kafka-{node_id}"


def kafka_node_homes(stack_home: Path) -> list[Path]:
    """The home of every Kafka node a stack home can hold, in either layout."""
    return [
        stack_home / node_directory_name(brokers, node_id)
        for brokers in (1, 3)
        for node_id in range(1, brokers + 1)
    ]


def server_properties(nodes: Sequence[KafkaNode], node: KafkaNode, data_dir: Path) -> str:
    """The ``server.properties`` of ``node`` in a cluster of ``nodes``."""
    replicas = len(nodes)
    config = _BROKER_CONFIG.format(
        node_id=node.node_id,
        voters=",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in nodes),
        host=node.host,
        port=node.port,
        controller_port=node.controller_port,
        data_dir=data_dir,
        replicas=replicas,
        min_isr=min(replicas, 2),
    )
    return config if replicas == 1 else config + _CLUSTER_CONFIG


def cluster_id(stack_home: Path) -> str:
    """The id every node of a three-node stack is formatted with, derived from its home.

    The nodes are formatted independently (in parallel); deriving the id from
    the stack home makes them agree without a file they would race to write.
    """
    name = f"cqrs-stack:{stack_home.resolve()}"
    return _first_usable(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{name}:{attempt}" if attempt else name)
        for attempt in itertools.count()
    )


def random_cluster_id() -> str:
    """A fresh id for a single node."""
    return _first_usable(uuid.uuid4() for _ in itertools.count())


def _first_usable(candidates: Iterator[uuid.UUID]) -> str:
    """The first candidate, encoded as Kafka does, that does not start with '-' (the
    storage tool would read it as an option, as Kafka's own generator knows)."""
    encoded = (base64.urlsafe_b64encode(c.bytes).decode().rstrip("=") for c in candidates)
    return next(i for i in encoded if not i.startswith("-"))


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""

_LOG4J1 = """\
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def kafka_services(settings: Settings) -> list[KafkaService]:
    """One service per Kafka node of the local stack."""
    nodes = kafka_nodes(settings)
    return [KafkaService(settings, node.node_id) for node in nodes]


class KafkaService(Service):
    """One Kafka node: the stack's only one, or node n of three."""

    def __init__(self, settings: Settings, node_id: int = 1) -> None:
        self.nodes = kafka_nodes(settings)
        self.node = self.nodes[node_id - 1]
        self.name = node_directory_name(len(self.nodes), node_id)
        self.description = (
            "Apache Kafka (KRaft, single node)"
            if len(self.nodes) == 1
            else f"Apache Kafka node {node_id} of {len(self.nodes)} (KRaft)"
        )
        super().__init__(settings)

    @property
    def clustered(self) -> bool:
        return len(self.nodes) > 1

    def address(self) -> str:
        return self.node.address if self.clustered else self.settings.kafka.bootstrap_servers

    def ports(self) -> list[Port]:
        return [
            Port(self.node.host, self.node.port, "CQRS_KAFKA__BOOTSTRAP_SERVERS"),
            Port(self.node.host, self.node.controller_port, "CQRS_STACK__KAFKA_CONTROLLER_PORT"),
        ]

    @property
    def _major(self) -> int:
        return int(self.settings.stack.kafka_version.split(".")[0])

    @property
    def _jars(self) -> Path:
        lib = self.settings.stack.home.resolve() / "lib"
        return lib / f"kafka-{self.settings.stack.kafka_version}" / "jars"

    def _jdk(self) -> Jdk:
        return find_jdk(17 if self._major >= 4 else 11, self.settings.stack.java_home, "Kafka")

    def prepare(self, report: Report) -> None:
        version = self.settings.stack.kafka_version
        report(f"resolving Kafka {version} jars (Maven)")
        resolve_jars(
            self._jars.parent.name,
            self._artifacts(),
            self._jars.parent.parent,
            self.settings.stack.maven_repository,
        )
        self._write_configs()
        if not (self.home / "data" / "meta.properties").exists():
            report("formatting KRaft storage")
            self._format_storage()

    def _artifacts(self) -> list[str]:
        version = self.settings.stack.kafka_version
        if self._major >= 4:  # log4j 2 behind slf4j 1.7
            logging_jars = ["org.apache.logging.log4j:log4j-slf4j-impl:2.25.4"]
        else:  # Kafka 3.x logs with reload4j
            logging_jars = ["org.slf4j:slf4j-reload4j:1.7.36"]
        return [f"org.apache.kafka:kafka_2.13:{version}", *logging_jars]

    def _write_configs(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(
            server_properties(self.nodes, self.node, self.home / "data")
        )
        # Both logging generations write to stdout, which the launcher sends to the log.
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        (self.home / "log4j.properties").write_text(_LOG4J1)

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            str(self._jdk().java),
            f"-Xms{self.settings.stack.kafka_heap}",
            f"-Xmx{self.settings.stack.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp",
            f"{self._jars}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        identifier = cluster_id(self.settings.stack.home) if self.clustered else random_cluster_id()
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            identifier,
            "-c",
            str(self.home / "server.properties"),
            "--ignore-formatted",
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"formatting Kafka storage in {self.home / 'data'} failed: "
                f"{result.stdout.strip()[-300:]} {result.stderr.strip()[-300:]}; "
                "remove that directory and retry"
            )

    def launch_spec(self) -> LaunchSpec:
        return LaunchSpec(
            argv=self._java_command("kafka.Kafka", str(self.home / "server.properties")),
            cwd=self.home,
            log_path=self.log_path,
            stop_timeout_s=45.0,
        )

    def probe(self) -> bool:
        """A round trip through the cluster, bootstrapped from this node alone.

        Of three nodes, this one must also be registered and unfenced (in the
        metadata's brokers), so a restarted node is ready only once it rejoined.
        """
        if not tcp_open(self.node.host, self.node.port):
            return False
        # librdkafka takes a logger object too, which its type hints do not admit.
        config = cast(KafkaConfig, {**self.settings.kafka.confluent_config(), "logger": _QUIET})
        if self.clustered:
            config["bootstrap.servers"] = self.node.address
        try:
            admin = AdminClient(config)
            metadata = admin.list_topics(timeout=3)
            if self.clustered and self.node.node_id not in metadata.brokers:
                return False
            if HEALTH_TOPIC not in metadata.topics:
                topic = NewTopic(HEALTH_TOPIC, 1, len(self.nodes))
                admin.create_topics([topic])[HEALTH_TOPIC].result(timeout=10)
            return _round_trip(config)
        except KafkaException:
            return False


def _round_trip(config: KafkaConfig) -> bool:
    """Produce a unique record to the health topic and read it back."""
    token = uuid.uuid4().bytes
    delivered: list[int] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        offset = message.offset()
        if error is None and offset is not None:
            delivered.append(offset)

    producer = Producer({**config, "acks": "all"})
    producer.produce(HEALTH_TOPIC, token, on_delivery=on_delivery)
    producer.flush(10)
    if not delivered:
        return False
    consumer = Consumer({**config, "group.id": "__cqrs_stack_health", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEALTH_TOPIC, 0, delivered[0])])
        message = consumer.poll(10)
        return message is not None and message.error() is None and message.value() == token
    finally:
        consumer.close()
