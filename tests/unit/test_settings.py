from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import ConfigurationError
from core.settings import CONFIG_FILE_ENV, Settings, host_and_port, load_settings, settings_problems


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CQRS_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.registry.url == "http://127.0.0.1:8081"
    assert settings.postgres.port == 5432
    assert settings.search.url == "http://127.0.0.1:9200"


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_KAFKA__BOOTSTRAP_SERVERS", "broker-1:9094,broker-2:9094")
    monkeypatch.setenv("CQRS_POSTGRES__PORT", "6543")
    monkeypatch.setenv("CQRS_SEARCH__ENGINE", "elasticsearch")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker-1:9094,broker-2:9094"
    assert settings.postgres.port == 6543
    assert settings.search.engine == "elasticsearch"


def test_toml_file_is_read_and_environment_wins_over_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "cqrs.toml"
    config.write_text('[postgres]\nhost = "db.internal"\nport = 5433\n[kafka]\nclient_id = "x"\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("CQRS_POSTGRES__PORT", "5434")
    settings = load_settings()
    assert settings.postgres.host == "db.internal"
    assert settings.postgres.port == 5434
    assert settings.kafka.client_id == "x"


def test_missing_config_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigurationError, match="does not name a file"):
        load_settings()


def test_unknown_and_malformed_settings_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_POSTGRES__PORT", "not-a-port")
    monkeypatch.setenv("CQRS_PROCESSOR__PARTITIONS", "abc")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert "CQRS_POSTGRES__PORT='not-a-port': Input should be a valid integer" in message
    assert "CQRS_PROCESSOR__PARTITIONS='abc'" in message
    monkeypatch.setenv("CQRS_POSTGRES__PORT", "5432")
    monkeypatch.setenv("CQRS_PROCESSOR__PARTITIONS", "6")
    monkeypatch.setenv("CQRS_KAFKA__SASL_MECHANISM", "NOPE")
    with pytest.raises(ConfigurationError, match="CQRS_KAFKA__SASL_MECHANISM='NOPE'"):
        load_settings()
    with pytest.raises(ValidationError, match="extra"):
        Settings(kafka={"bootstrap_server": "typo:9092"})


def test_secrets_never_appear_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_KAFKA__SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("CQRS_POSTGRES__PASSWORD", "pg-s3cret")
    monkeypatch.setenv("CQRS_SEARCH__API_KEY", "es-s3cret")
    settings = load_settings()
    for text in (repr(settings), settings.model_dump_json()):
        assert "s3cret" not in text
    assert "pg-s3cret" in settings.postgres.conninfo()


def test_confluent_config_carries_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CQRS_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CQRS_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("CQRS_KAFKA__SASL_PASSWORD", "pw")
    monkeypatch.setenv("CQRS_KAFKA__SSL_CAFILE", "/etc/ca.pem")
    config = load_settings().kafka.confluent_config()
    assert config["security.protocol"] == "sasl_ssl"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "svc"
    assert config["sasl.password"] == "pw"
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert "ssl.certificate.location" not in config


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.postgres.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("broker-1:9094,broker-2:9094", ("broker-1", 9094)),
        ("http://127.0.0.1:9200", ("127.0.0.1", 9200)),
        ("https://search.example:443/prefix", ("search.example", 443)),
    ],
)
def test_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert host_and_port(address) == expected


def test_host_and_port_requires_a_port() -> None:
    with pytest.raises(ValueError, match="with a port"):
        host_and_port("http://no-port")


def test_a_wrong_secret_is_named_but_never_shown() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(postgres={"password": 12345678})
    line = settings_problems(raised.value)
    assert line.startswith("invalid settings: CQRS_POSTGRES__PASSWORD: ")
    assert "12345678" not in line
