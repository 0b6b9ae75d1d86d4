"""Apache Kafka, one node in KRaft mode (broker and controller in one JVM).

Configured for a laptop and for tests: replication factor 1 everywhere,
including the transaction state log (so transactions, and with them Faust's
exactly-once mode, work on one node), no initial rebalance delay, and no
automatic topic creation (the product creates its topics with explicit
configs; a typo must fail, not create a topic).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
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

from cqrs.errors import StackError
from cqrs.settings import KafkaConfig, host_and_port
from deploy.stack.processes import LaunchSpec, tcp_open
from deploy.stack.service import Port, Report, Service
from deploy.stack.toolchain import Jdk, find_jdk, resolve_jars

HEALTH_TOPIC = "__cqrs_stack_health"
_QUIET = logging.getLogger("cqrs.stack.kafka.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_BROKER_CONFIG = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{host}:{controller_port}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A killed worker's open transaction is aborted within a second of its timeout (default 10 s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
log.retention.check.interval.ms=60000
"""

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


class KafkaService(Service):
    name = "kafka"
    description = "Apache Kafka (KRaft, single node)"

    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def ports(self) -> list[Port]:
        host, port = host_and_port(self.address())
        return [
            Port(host, port, "CQRS_KAFKA__BOOTSTRAP_SERVERS"),
            Port(
                host, self.settings.stack.kafka_controller_port, "CQRS_STACK__KAFKA_CONTROLLER_PORT"
            ),
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
        host, port = host_and_port(self.address())
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(
            _BROKER_CONFIG.format(
                host=host,
                port=port,
                data_dir=self.home / "data",
                controller_port=self.settings.stack.kafka_controller_port,
            )
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
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
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
        host, port = host_and_port(self.address())
        if not tcp_open(host, port):
            return False
        try:
            return self._round_trip()
        except KafkaException:
            return False

    def _round_trip(self) -> bool:
        """Produce a unique record to the health topic and read it back."""
        # librdkafka takes a logger object too, which its type hints do not admit.
        config = cast(KafkaConfig, {**self.settings.kafka.confluent_config(), "logger": _QUIET})
        admin = AdminClient(config)
        if HEALTH_TOPIC not in admin.list_topics(timeout=3).topics:
            future = admin.create_topics([NewTopic(HEALTH_TOPIC, 1, 1)])[HEALTH_TOPIC]
            future.result(timeout=10)
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
        consumer = Consumer(
            {**config, "group.id": "__cqrs_stack_health", "enable.auto.commit": False}
        )
        try:
            consumer.assign([TopicPartition(HEALTH_TOPIC, 0, delivered[0])])
            message = consumer.poll(10)
            return message is not None and message.error() is None and message.value() == token
        finally:
            consumer.close()
