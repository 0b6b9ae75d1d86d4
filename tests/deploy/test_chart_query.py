"""The query service in the chart: one HTTP port for the API, its metrics and its probes,
API keys from a mounted Secret, the read-only PostgreSQL role, and nothing left of it
when it is disabled."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from core.query_settings import QuerySettings
from tests.deploy.chart import Manifest, Rendered, helm_template, pod_spec, render

QUERY = "demo-cqrs-pipeline-query"
KEYS_FILE = "/etc/cqrs/query-api-keys/api-keys.json"


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render(None, "metrics.serviceMonitor.enabled=true")


def _container(rendered: Rendered, name: str = QUERY) -> Manifest:
    deployment = rendered.named("Deployment", name)
    container: Manifest = pod_spec(deployment)["containers"][0]
    return container


def _env(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _selects(selector: Manifest, labels: Manifest) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_the_deployment_runs_a_real_command_on_one_port_with_its_probes(
    default: Rendered,
) -> None:
    deployment = default.named("Deployment", QUERY)
    assert deployment["spec"]["replicas"] == 2
    spec = pod_spec(deployment)
    assert spec["terminationGracePeriodSeconds"] == 45
    [spread] = spec["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "query"
    container = _container(default)
    args = container["args"]
    assert args == ["query", "serve", "--host", "0.0.0.0", "--port", "8000"]
    known = subprocess.run(
        [sys.executable, "-m", "cqrs", *args[:2], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert known.returncode == 0, known.stderr
    assert "--host" in known.stdout and "--port" in known.stdout
    # Everything, /metrics and the probes included, is on the one port.
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8000"


def test_the_api_keys_come_from_the_named_secret_mounted_read_only(tmp_path: Path) -> None:
    values = tmp_path / "keys-values.yaml"
    values.write_text("query:\n  apiKeys: {existingSecret: shop-query-keys, key: keys}\n")
    rendered = render(values)
    container = _container(rendered)
    assert _env(container)["CQRS_QUERY__API_KEYS_FILE"] == {
        "name": "CQRS_QUERY__API_KEYS_FILE",
        "value": KEYS_FILE,
    }
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "query-api-keys"]
    assert mount == {
        "name": "query-api-keys",
        "mountPath": str(Path(KEYS_FILE).parent),
        "readOnly": True,
    }
    [volume] = [
        v
        for v in pod_spec(rendered.named("Deployment", QUERY))["volumes"]
        if v["name"] == "query-api-keys"
    ]
    assert volume["secret"] == {
        "secretName": "shop-query-keys",
        "items": [{"key": "keys", "path": Path(KEYS_FILE).name}],
        "defaultMode": 0o440,
    }
    # Only the query service sees the keys.
    for workload in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
        if workload["metadata"]["name"] != QUERY:
            names = {v["name"] for v in pod_spec(workload)["volumes"]}
            assert "query-api-keys" not in names, workload["metadata"]["name"]


def test_its_settings_are_the_services_own_with_the_codes_defaults(default: Rendered) -> None:
    given = {
        name.removeprefix("CQRS_QUERY__").lower(): entry["value"]
        for name, entry in _env(_container(default)).items()
        if name.startswith("CQRS_QUERY__")
    }
    # extra="forbid": a misspelt variable fails here rather than being ignored.
    settings = QuerySettings.model_validate(given)
    assert str(settings.api_keys_file) == KEYS_FILE
    fields = set(QuerySettings.model_fields) - {"host", "port", "api_keys", "api_keys_file"}
    assert set(given) == fields | {"api_keys_file"}
    defaults = QuerySettings()
    for field in fields:
        assert getattr(settings, field) == getattr(defaults, field), field


def test_values_reach_the_settings_and_the_port_moves_everywhere(tmp_path: Path) -> None:
    values = tmp_path / "query-values.yaml"
    values.write_text("query: {maxWaitSeconds: 12.5}\n")  # --set would make it a string
    rendered = render(
        values,
        "query.port=8080",
        "query.poolSize=4",
        "query.replicas=3",
        "metrics.serviceMonitor.enabled=true",
    )
    container = _container(rendered)
    assert container["args"][-2:] == ["--port", "8080"]
    assert container["ports"][0]["containerPort"] == 8080
    env = _env(container)
    assert env["CQRS_QUERY__MAX_WAIT_S"]["value"] == "12.5"
    assert env["CQRS_QUERY__POOL_SIZE"]["value"] == "4"
    assert rendered.named("Deployment", QUERY)["spec"]["replicas"] == 3
    assert rendered.named("Service", QUERY)["spec"]["ports"][0]["port"] == 8080
    policy = rendered.named("NetworkPolicy", QUERY)
    assert {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]} == {8080}


def test_it_reads_postgres_as_the_reader_role_and_the_sinks_keep_theirs(
    default: Rendered,
) -> None:
    env = _env(_container(default))
    assert env["CQRS_POSTGRES__USER"]["value"] == "cqrs_reader"
    assert env["CQRS_POSTGRES__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "cqrs-postgres-reader",
        "key": "password",
    }
    assert "CQRS_SEARCH__PASSWORD" in env  # reads and refreshes the search aliases
    sink = _env(_container(default, "demo-cqrs-pipeline-sink-order-summary"))
    assert "CQRS_POSTGRES__USER" not in sink  # the ConfigMap's runtime role
    assert sink["CQRS_POSTGRES__PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "cqrs-postgres-sink",
        "key": "password",
    }
    settings = default.named("ConfigMap", "demo-cqrs-pipeline-settings")["data"]
    assert settings["CQRS_POSTGRES__USER"] == "cqrs_sink"


def test_an_inline_reader_password_goes_to_the_charts_secret() -> None:
    rendered = render(
        None, "postgres.reader.existingSecret=", "postgres.reader.password=inline-reader"
    )
    secret = rendered.named("Secret", "demo-cqrs-pipeline-credentials")
    assert base64.b64decode(secret["data"]["postgres-reader-password"]).decode() == (
        "inline-reader"
    )
    reference = _env(_container(rendered))["CQRS_POSTGRES__PASSWORD"]["valueFrom"]
    assert reference["secretKeyRef"] == {
        "name": "demo-cqrs-pipeline-credentials",
        "key": "postgres-reader-password",
    }


def test_a_missing_reader_credential_fails_with_what_to_set() -> None:
    done = helm_template("--set", "postgres.reader.existingSecret=")
    assert done.returncode != 0
    assert "set postgres.reader.existingSecret" in done.stderr


def test_without_a_keys_secret_the_render_fails_with_what_to_set() -> None:
    done = helm_template("--set", "query.apiKeys.existingSecret=")
    assert done.returncode != 0
    assert "query.apiKeys.existingSecret is empty" in done.stderr
    assert "query.enabled=false" in done.stderr
    disabled = helm_template(
        "--set", "query.apiKeys.existingSecret=", "--set", "query.enabled=false"
    )
    assert disabled.returncode == 0, disabled.stderr


def test_the_service_exposes_http_and_only_the_querys_monitor_scrapes_it(
    default: Rendered,
) -> None:
    service = default.named("Service", QUERY)
    assert "clusterIP" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    services = default.of_kind("Service")
    serving = {"metrics": {s["metadata"]["name"] for s in services} - {QUERY}, "http": {QUERY}}
    scraped: set[tuple[str, str]] = set()
    for monitor in default.of_kind("ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["path"] == "/metrics"
            for svc in services:
                names = {port["name"] for port in svc["spec"]["ports"]}
                if _selects(selector, svc["metadata"]["labels"]) and endpoint["port"] in names:
                    target = (svc["metadata"]["name"], endpoint["port"])
                    assert svc["metadata"]["name"] in serving[endpoint["port"]], target
                    assert target not in scraped, f"{target} scraped twice"
                    scraped.add(target)
    # Every Service is scraped once, on the port that serves /metrics (never the
    # registry's `http`, which serves none).
    assert scraped == {(name, port) for port, names in serving.items() for name in names}


def test_a_disruption_budget_takes_one_pod_at_a_time(default: Rendered) -> None:
    budget = default.named("PodDisruptionBudget", QUERY)
    assert budget["spec"]["maxUnavailable"] == 1
    labels = default.named("Deployment", QUERY)["spec"]["template"]["metadata"]["labels"]
    assert _selects(budget["spec"]["selector"]["matchLabels"], labels)


def test_the_network_policy_lets_callers_in_and_reaches_the_stores(default: Rendered) -> None:
    policy = default.named("NetworkPolicy", QUERY)["spec"]
    ingress = [(rule["from"], [p["port"] for p in rule["ports"]]) for rule in policy["ingress"]]
    assert ingress == [
        (
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            [8000],
        ),
        ([{"podSelector": {}}], [8000]),  # the release's namespace
    ]
    egress = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress == {53, 9093, 8081, 5432, 9200}


def test_the_callers_are_configurable_and_none_means_none(tmp_path: Path) -> None:
    values = tmp_path / "callers-values.yaml"
    values.write_text(
        "networkPolicy:\n"
        "  metricsScrapers: []\n"
        "  query:\n"
        "    ingress:\n"
        "      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop-web}}\n"
    )
    policy = render(values).named("NetworkPolicy", QUERY)["spec"]
    [rule] = policy["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop-web"}}}
    ]
    values.write_text("networkPolicy:\n  metricsScrapers: []\n  query:\n    ingress: []\n")
    closed = render(values).named("NetworkPolicy", QUERY)["spec"]
    assert not closed.get("ingress"), "an empty list lets nobody in, never everyone"


def test_disabling_it_removes_every_object_of_it() -> None:
    settings = (
        "metrics.serviceMonitor.enabled=true",
        "postgres.reader.existingSecret=",
        "postgres.reader.password=inline-reader",
    )
    rendered = render(None, "query.enabled=false", *settings)
    assert render(None, *settings).named("Deployment", QUERY)
    for obj in rendered.objects:
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/component") != "query", obj["metadata"]["name"]
        assert "query" not in obj["metadata"]["name"], obj["metadata"]["name"]
        assert "CQRS_QUERY__" not in repr(obj), obj["metadata"]["name"]
    # The reader's password was the chart Secret's only entry: no Secret is left.
    assert not any(
        "postgres-reader-password" in secret.get("data", {})
        for secret in rendered.of_kind("Secret")
    )
