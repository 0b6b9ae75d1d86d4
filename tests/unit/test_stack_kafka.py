"""The local stack's Kafka layouts: one node (the default) or three, rendered and addressed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import Settings, load_settings
from deploy.stack.kafka import (
    KafkaNode,
    cluster_id,
    kafka_node_homes,
    kafka_nodes,
    kafka_services,
    random_cluster_id,
    server_properties,
)
from deploy.stack.registry import RegistryService
from deploy.stack.stack import services

SINGLE_NODE = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=/data
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


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CQRS_"):
            monkeypatch.delenv(name)


def _properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_single_node_is_the_default_and_renders_as_before() -> None:
    settings = load_settings()
    nodes = kafka_nodes(settings)

    assert settings.stack.kafka_brokers == 1
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert nodes == [KafkaNode(1, "127.0.0.1", 9092, 9093)]
    assert server_properties(nodes, nodes[0], Path("/data")) == SINGLE_NODE
    assert [service.name for service in kafka_services(settings)] == ["kafka"]


def test_three_nodes_listen_on_every_other_port_from_one_bootstrap_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CQRS_STACK__KAFKA_BROKERS", "3")
    settings = load_settings()

    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert settings.kafka.confluent_config()["bootstrap.servers"] == (
        "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    )
    assert kafka_nodes(settings) == [
        KafkaNode(1, "127.0.0.1", 9092, 9093),
        KafkaNode(2, "127.0.0.1", 9094, 9095),
        KafkaNode(3, "127.0.0.1", 9096, 9097),
    ]


def test_three_listed_addresses_are_where_the_three_nodes_listen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CQRS_STACK__KAFKA_BROKERS", "3")
    monkeypatch.setenv(
        "CQRS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9192,127.0.0.1:9292,localhost:9392"
    )
    monkeypatch.setenv("CQRS_STACK__KAFKA_CONTROLLER_PORT", "9193")
    settings = load_settings()

    assert settings.kafka.bootstrap_servers == "127.0.0.1:9192,127.0.0.1:9292,localhost:9392"
    assert [(node.host, node.port, node.controller_port) for node in kafka_nodes(settings)] == [
        ("127.0.0.1", 9192, 9193),
        ("127.0.0.1", 9292, 9195),
        ("localhost", 9392, 9197),
    ]


def test_a_multi_address_bootstrap_of_one_node_is_left_to_the_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CQRS_KAFKA__BOOTSTRAP_SERVERS", "broker-1:9094,broker-2:9094")
    settings = load_settings()

    assert settings.kafka.bootstrap_servers == "broker-1:9094,broker-2:9094"
    assert kafka_nodes(settings) == [KafkaNode(1, "broker-1", 9094, 9093)]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"CQRS_STACK__KAFKA_BROKERS": "2"}, "Input should be 1 or 3"),
        (
            {"CQRS_STACK__KAFKA_BROKERS": "3", "CQRS_KAFKA__BOOTSTRAP_SERVERS": "h:1,h:3"},
            "lists 2",
        ),
        (
            {"CQRS_STACK__KAFKA_BROKERS": "3", "CQRS_STACK__KAFKA_CONTROLLER_PORT": "9094"},
            "CQRS_STACK__KAFKA_CONTROLLER_PORT",
        ),
    ],
)
def test_impossible_layouts_are_refused(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_each_of_three_nodes_renders_its_own_identity_and_the_cluster_s_replication() -> None:
    settings = Settings(stack={"kafka_brokers": 3})
    nodes = kafka_nodes(settings)

    rendered = [_properties(server_properties(nodes, node, Path("/d"))) for node in nodes]

    voters = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    for node, config in zip(nodes, rendered, strict=True):
        assert config["node.id"] == str(node.node_id)
        assert config["controller.quorum.voters"] == voters
        assert config["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert config["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert config["default.replication.factor"] == "3"
        assert config["min.insync.replicas"] == "2"
        assert config["offsets.topic.replication.factor"] == "3"
        assert config["transaction.state.log.replication.factor"] == "3"
        assert config["transaction.state.log.min.isr"] == "2"
        assert config["share.coordinator.state.topic.replication.factor"] == "3"
        assert config["broker.session.timeout.ms"] == "6000"
    assert [config["listeners"] for config in rendered] == [
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
        "PLAINTEXT://127.0.0.1:9096,CONTROLLER://127.0.0.1:9097",
    ]


def test_three_nodes_are_three_services_with_homes_of_their_own(tmp_path: Path) -> None:
    settings = Settings(stack={"kafka_brokers": 3, "home": tmp_path})
    nodes = kafka_services(settings)

    assert [node.name for node in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [node.home for node in nodes] == [tmp_path.resolve() / f"kafka-{n}" for n in (1, 2, 3)]
    assert len({node.pid_path for node in nodes} | {node.log_path for node in nodes}) == 6
    assert [node.address() for node in nodes] == [
        "127.0.0.1:9092",
        "127.0.0.1:9094",
        "127.0.0.1:9096",
    ]
    assert [(port.port, port.setting) for port in nodes[1].ports()] == [
        (9094, "CQRS_KAFKA__BOOTSTRAP_SERVERS"),
        (9095, "CQRS_STACK__KAFKA_CONTROLLER_PORT"),
    ]
    assert [service.name for service in services(settings)] == [
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "registry",
        "postgres",
        "opensearch",
    ]
    assert RegistryService(settings).depends_on == ("kafka-1", "kafka-2", "kafka-3")
    assert RegistryService(Settings()).depends_on == ("kafka",)
    assert set(kafka_node_homes(tmp_path)) == {
        tmp_path / name for name in ("kafka", "kafka-1", "kafka-2", "kafka-3")
    }


def test_the_nodes_agree_on_a_cluster_id_derived_from_the_stack_home(tmp_path: Path) -> None:
    identifier = cluster_id(tmp_path / "a")

    assert identifier == cluster_id(tmp_path / "a")
    assert identifier != cluster_id(tmp_path / "b")
    assert len(identifier) == 22  # a Kafka Uuid: 16 bytes, base64url without padding


def test_cluster_ids_never_start_with_a_dash_the_storage_tool_would_read_as_an_option(
    tmp_path: Path,
) -> None:
    homes = [tmp_path / str(n) for n in range(300)]
    derived = [cluster_id(home) for home in homes]
    fresh = [random_cluster_id() for _ in range(300)]
    assert not [i for i in derived + fresh if i.startswith("-")]
    assert len(set(derived)) == len(derived)
    assert all(len(i) == 22 for i in derived + fresh)
