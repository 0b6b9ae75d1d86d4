"""A private Kafka cluster for fault tests: nodes to SIGKILL and start again.

``private_kafka(tmp_path, brokers=3)`` runs one or three KRaft nodes from the
local stack's own code (``deploy/stack/kafka.py``) in a home of their own under
``tmp_path``, on free ports, with the jars the local stack already resolved
(its ``lib`` directory is linked in), and waits until every node is ready::

    with private_kafka(tmp_path, brokers=3) as cluster:
        cluster.bootstrap                 # "127.0.0.1:p,127.0.0.1:p+2,127.0.0.1:p+4"
        leader = cluster.leader_of(topic, 0)
        cluster.kill(leader)              # SIGKILL of that node's JVM
        cluster.start(leader)             # back, and registered with the cluster again

Everything it started is killed when the block ends (the data is thrown away,
so there is nothing to stop gracefully). The main stack is never touched: a
process of the pipeline reaches the private cluster with
``CQRS_KAFKA__BOOTSTRAP_SERVERS=<cluster.bootstrap>`` (``cluster.settings`` is a
whole ``Settings`` for it) and can keep using the main stack's schema registry.
Three nodes replicate new topics three times by default, but the product
creates its topics with ``CQRS_PROCESSOR__REPLICATION_FACTOR`` (default 1): a
fault test sets it to 3.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata, PartitionMetadata

from core.settings import KAFKA_PORT_STEP, KafkaConfig, Settings, load_settings
from deploy.stack.kafka import KafkaService, kafka_services
from deploy.stack.processes import running_process
from deploy.stack.stack import start_service

_PORT_RANGE = (15000, 30000)  # below Linux's ephemeral ports (32768 and up)


class PrivateKafka:
    """A running private cluster; see the module docstring."""

    def __init__(self, settings: Settings, ready_timeout_s: float) -> None:
        self.settings = settings
        self.ready_timeout_s = ready_timeout_s
        self.log: list[str] = []
        self._nodes = {service.node.node_id: service for service in kafka_services(settings)}

    @property
    def bootstrap(self) -> str:
        """Every node's address, for ``bootstrap.servers``."""
        return ",".join(service.node.address for service in self._nodes.values())

    @property
    def node_ids(self) -> list[int]:
        return list(self._nodes)

    def config(self) -> KafkaConfig:
        """librdkafka connection settings for the private cluster."""
        return self.settings.kafka.confluent_config()

    def node(self, node_id: int) -> KafkaService:
        return self._nodes[node_id]

    def pid(self, node_id: int) -> int | None:
        process = running_process(self._nodes[node_id].pid_path)
        return process.pid if process else None

    def start(self, node_id: int) -> None:
        """Start the node (unless it runs) and wait until it serves a round trip again."""
        service = self._nodes[node_id]
        start_service(service, self.ready_timeout_s, lambda line: self._note(service, line))

    def start_all(self) -> None:
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            list(pool.map(self.start, self._nodes))

    def kill(self, node_id: int) -> None:
        """SIGKILL the node's JVM and wait until it is gone."""
        process = running_process(self._nodes[node_id].pid_path)
        if process is None:
            raise RuntimeError(f"node {node_id} of the private cluster is not running")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)  # reaps it too: this process launched it
        self._nodes[node_id].pid_path.unlink(missing_ok=True)

    def kill_all(self) -> None:
        for node_id in self._nodes:
            with contextlib.suppress(RuntimeError, psutil.Error):
                self.kill(node_id)

    def metadata(self, topic: str | None = None) -> ClusterMetadata:
        """Cluster metadata as any live node sees it."""
        return AdminClient(self.config()).list_topics(topic, timeout=10)

    def leader_of(self, topic: str, partition: int) -> int:
        """Id of the node that leads the partition (-1 while none does, or it is not known)."""
        found = self._partition(topic, partition)
        return -1 if found is None else int(found.leader)

    def isr_of(self, topic: str, partition: int) -> list[int]:
        """Ids of the partition's in-sync replicas (none while it is not known)."""
        found = self._partition(topic, partition)
        return [] if found is None else sorted(found.isrs)

    def _partition(self, topic: str, partition: int) -> PartitionMetadata | None:
        # A topic just created is known to the controller before every broker's metadata.
        described = self.metadata(topic).topics.get(topic)
        if described is None or described.error is not None:
            return None
        return described.partitions.get(partition)

    def wait_until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = 60.0
    ) -> float:
        """Poll ``condition`` until it holds; the seconds it took."""
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"not within {timeout_s:.0f}s: {what}")
            time.sleep(0.2)
        return time.monotonic() - started

    def _note(self, service: KafkaService, line: str) -> None:
        self.log.append(f"{service.name}: {line}")


@contextlib.contextmanager
def private_kafka(
    tmp_path: Path,
    brokers: int = 3,
    base: Settings | None = None,
    heap: str = "384m",
    ready_timeout_s: float = 90.0,
) -> Iterator[PrivateKafka]:
    """Start a private one- or three-node cluster; kill it when the block ends."""
    base = base or load_settings()
    home = tmp_path / "kafka-stack"
    home.mkdir(parents=True, exist_ok=True)
    shared_lib = base.stack.home.resolve() / "lib"
    shared_lib.mkdir(parents=True, exist_ok=True)
    if not (home / "lib").exists():  # a second cluster in the same tmp_path reuses the first's
        (home / "lib").symlink_to(shared_lib, target_is_directory=True)
    first_port = _free_port_run(2 * brokers)
    addresses = [f"127.0.0.1:{first_port + KAFKA_PORT_STEP * index}" for index in range(brokers)]
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": ",".join(addresses)}),
            "stack": base.stack.model_copy(
                update={
                    "home": home,
                    "kafka_brokers": brokers,
                    "kafka_controller_port": first_port + 1,
                    "kafka_heap": heap,
                }
            ),
        }
    )
    cluster = PrivateKafka(settings, ready_timeout_s)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.kill_all()


def _free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        first = rng.randrange(*_PORT_RANGE)
        if all(_port_free(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports in {_PORT_RANGE}")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
