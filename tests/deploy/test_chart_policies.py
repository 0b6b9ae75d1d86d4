"""Policies every rendered object must meet, for every value set.

- Pods meet the "restricted" Pod Security Standard, have requests and limits,
  health probes on the process contract's endpoints, a read-only root filesystem,
  and take every credential from a Secret, never from a plain value.
- Topics match schemas/topics.py; autoscaling never exceeds the partitions.
- Every component has its Service, PodDisruptionBudget and NetworkPolicy.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from aggregates.shop import domain as shop
from core.settings import ProcessorSettings
from processors import command_task, process_manager_task
from schemas.topic_admin import CHANGELOG_CONFIG
from schemas.topics import domain_topic_specs
from tests.deploy.chart import (
    Manifest,
    Rendered,
    chart_defaults,
    helm_template,
    pod_spec,
    render,
    workloads,
)

ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECRET_NAME = re.compile(r"PASSWORD|API_KEY|SECRET|TOKEN|CREDENTIAL", re.IGNORECASE)


def _containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _values(rendered: Rendered, *path: str) -> Any:
    """A value from the value set's file, else the chart default."""
    for source in (rendered.values, chart_defaults()):
        node: Any = source
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return node
    raise KeyError(".".join(path))


def test_pods_meet_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        pod_context = spec.get("securityContext", {})
        for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert spec.get(field) in (None, False) or field == "hostUsers", f"{name}: {field}"
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod_context.get("runAsUser", 1) != 0, name
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= ALLOWED_VOLUME_TYPES, f"{name}: volume {volume['name']} is {kinds}"
        for container in _containers(spec):
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged") in (None, False), where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert set(context.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}
            non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
            assert non_root is True, where
            assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, where
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert all("hostPort" not in port for port in container.get("ports", [])), where


def test_containers_have_requests_and_limits(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        for container in _containers(pod_spec(workload)):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                    f"{workload['metadata']['name']}/{container['name']} lacks {bound}"
                )


def _health_port(rendered: Rendered, workload: Manifest) -> tuple[str, int]:
    """The named port serving /metrics, /livez and /readyz: the query service's API port."""
    if _component(workload) == "query":
        return "http", _values(rendered, "query", "port")
    return "metrics", _values(rendered, "metrics", "port")


def _component(obj: Manifest) -> str:
    component: str = obj["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


def test_long_running_pods_probe_the_health_endpoints(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        if workload["kind"] == "Job":
            continue
        name, number = _health_port(rendered, workload)
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            assert ports[name] == number, where
            expected = {"livenessProbe": "/livez", "readinessProbe": "/readyz"}
            expected["startupProbe"] = "/livez"
            for probe, path in expected.items():
                action = container[probe]["httpGet"]
                assert (action["path"], action["port"]) == (path, name), f"{where} {probe}"


def test_graceful_shutdown_has_time_to_finish_a_transaction_or_batch(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        grace = pod_spec(workload).get("terminationGracePeriodSeconds", 30)
        if workload["kind"] == "StatefulSet" or "-sink-" in workload["metadata"]["name"]:
            assert grace >= 60, workload["metadata"]["name"]


def _inline_secrets(values: Any) -> set[str]:
    """Every non-empty password or key given inline in a values file."""
    found: set[str] = set()
    if isinstance(values, dict):
        for key, value in values.items():
            if key in ("password", "apiKey") and isinstance(value, str) and value:
                found.add(value)
            else:
                found |= _inline_secrets(value)
    return found


def test_no_credential_in_a_plain_value(rendered: Rendered) -> None:
    secrets = _inline_secrets(rendered.values)
    for obj in rendered.objects:
        if obj["kind"] == "Secret":
            assert _secret_values(obj) <= secrets | _keda_literals(obj), obj["metadata"]["name"]
            continue
        text = repr(obj)
        for secret in secrets:
            assert secret not in text, f"{obj['kind']}/{obj['metadata']['name']} leaks a secret"
        if obj["kind"] == "ConfigMap":
            leaked = [key for key in obj["data"] if SECRET_NAME.search(key)]
            assert leaked == [], f"{obj['metadata']['name']}: {leaked}"
    for workload in workloads(rendered):
        secret_volumes = {
            volume["name"] for volume in pod_spec(workload).get("volumes", []) if "secret" in volume
        }
        for container in _containers(pod_spec(workload)):
            secret_mounts = [
                mount["mountPath"] + "/"
                for mount in container.get("volumeMounts", [])
                if mount["name"] in secret_volumes
            ]
            for entry in container.get("env", []):
                if entry["name"].endswith("_FILE") and "value" in entry:
                    # A path, not a credential: it must name a file of a mounted Secret.
                    assert entry["value"].startswith(tuple(secret_mounts)), entry["name"]
                elif SECRET_NAME.search(entry["name"]):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), entry["name"]


def _secret_values(secret: Manifest) -> set[str]:
    encoded = {base64.b64decode(value).decode() for value in secret.get("data", {}).values()}
    return encoded | set(secret.get("stringData", {}).values())


def _keda_literals(secret: Manifest) -> set[str]:
    """The scaler's connection modes: not credentials (the password is referenced)."""
    if not secret["metadata"]["name"].endswith("-keda"):
        return set()
    literals = dict(secret.get("stringData", {}))
    assert set(literals) <= {"sasl", "tls", "username"}, "only modes and the user name"
    return set(literals.values())


def test_secrets_given_inline_are_kept_in_the_charts_own_secret() -> None:
    rendered = render(None, "postgres.existingSecret=", "postgres.password=inline-pg")
    secret = rendered.named("Secret", "demo-cqrs-pipeline-credentials")
    assert base64.b64decode(secret["data"]["postgres-password"]).decode() == "inline-pg"
    sink = rendered.named("Deployment", "demo-cqrs-pipeline-sink-order-summary")
    env = {entry["name"]: entry for entry in pod_spec(sink)["containers"][0]["env"]}
    reference = env["CQRS_POSTGRES__PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "demo-cqrs-pipeline-credentials", "key": "postgres-password"}


def test_a_missing_credential_fails_the_render_with_what_to_set() -> None:
    done = helm_template("--set", "postgres.existingSecret=", "--set", "postgres.password=")
    assert done.returncode != 0
    assert "set postgres.existingSecret" in done.stderr


def test_processes_get_only_the_credentials_they_need() -> None:
    rendered = render(None)
    by_name = {obj["metadata"]["name"]: obj for obj in workloads(rendered)}

    def env_names(name: str) -> set[str]:
        container = pod_spec(by_name[f"demo-cqrs-pipeline-{name}"])["containers"][0]
        return {entry["name"] for entry in container.get("env", [])}

    assert "CQRS_POSTGRES__PASSWORD" not in env_names("command-processor")
    assert "CQRS_SEARCH__PASSWORD" not in env_names("sink-order-summary")
    assert "CQRS_POSTGRES__PASSWORD" in env_names("sink-order-summary")
    assert "CQRS_SEARCH__PASSWORD" in env_names("sink-search-orders")
    assert "CQRS_POSTGRES__PASSWORD" not in env_names("sink-search-orders")


def test_topics_match_schemas_topics_py(rendered: Rendered) -> None:
    topics = rendered.of_kind("KafkaTopic")
    if not _values(rendered, "topics", "strimzi", "enabled"):
        assert topics == []
        settings = rendered.named("ConfigMap", "demo-cqrs-pipeline-settings")["data"]
        assert settings["CQRS_KAFKA__TOPIC_CREATION"] == "create"
        return
    prefix = _values(rendered, "kafka", "topicPrefix")
    partitions = _values(rendered, "topics", "partitions") or domain_topic_specs(shop)[0].partitions
    replicas = _values(rendered, "topics", "replicas")
    min_isr = str(_values(rendered, "topics", "minInSyncReplicas"))
    overrides = _values(rendered, "topics", "configOverrides")
    by_topic = {topic["spec"]["topicName"]: topic for topic in topics}
    for spec in domain_topic_specs(shop, partitions):
        topic = by_topic.pop(prefix + spec.name)
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == replicas
        expected = {"min.insync.replicas": min_isr, **spec.config, **overrides.get(spec.name, {})}
        assert topic["spec"]["config"] == expected
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == _values(
            rendered, "topics", "strimzi", "cluster"
        )
    # The workers' changelogs, as the workers name and verify them at start.
    processor = ProcessorSettings()
    for changelog in (
        command_task.changelog_topic(processor.app_id),
        process_manager_task.changelog_topic(
            processor.process_manager_group("fulfilment"), "fulfilment"
        ),
    ):
        topic = by_topic.pop(changelog)
        assert topic["spec"]["partitions"] == partitions
        assert topic["spec"]["replicas"] == replicas
        assert topic["spec"]["config"] == {"min.insync.replicas": min_isr, **CHANGELOG_CONFIG}
    if _values(rendered, "registry", "embedded"):
        schemas = by_topic.pop(_values(rendered, "registry", "schemasTopic"))
        assert schemas["spec"]["partitions"] == 1
        assert schemas["spec"]["config"]["cleanup.policy"] == "compact"
    assert by_topic == {}, f"topics the code does not know: {sorted(by_topic)}"
    settings = rendered.named("ConfigMap", "demo-cqrs-pipeline-settings")["data"]
    assert settings["CQRS_KAFKA__TOPIC_CREATION"] == "verify"
    assert settings["CQRS_PROCESSOR__PARTITIONS"] == str(partitions)


def test_autoscaling_follows_lag_within_the_partition_count(rendered: Rendered) -> None:
    scaled = rendered.of_kind("ScaledObject")
    if not _values(rendered, "keda", "enabled"):
        assert scaled == []
        return
    settings = rendered.named("ConfigMap", "demo-cqrs-pipeline-settings")["data"]
    partitions = int(settings["CQRS_PROCESSOR__PARTITIONS"])
    prefix = settings["CQRS_KAFKA__TOPIC_PREFIX"]
    targets = {obj["spec"]["scaleTargetRef"]["name"]: obj for obj in scaled}
    processor = targets.pop("demo-cqrs-pipeline-command-processor")
    trigger = processor["spec"]["triggers"][0]["metadata"]
    assert trigger["consumerGroup"] == settings["CQRS_PROCESSOR__APP_ID"]
    assert trigger["topic"] == prefix + "commands"
    sinks = {name for name in targets if "-sink-" in name}
    assert sinks == set(targets), "only the processor and the sinks scale on lag"
    assert sinks, "every enabled sink scales"
    for obj in scaled:
        assert 1 <= obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        assert obj["spec"]["maxReplicaCount"] <= partitions
        metadata = obj["spec"]["triggers"][0]["metadata"]
        assert int(metadata["lagThreshold"]) > int(metadata["activationLagThreshold"]) > 0
    for name, obj in targets.items():
        metadata = obj["spec"]["triggers"][0]["metadata"]
        projection = name.removeprefix("demo-cqrs-pipeline-sink-")
        assert metadata["consumerGroup"] == f"{prefix}cqrs-sink-{projection}"
        assert metadata["topic"] == prefix + "events"
    # The modes KEDA's Kafka scaler accepts (its docs: plaintext, scram_sha256, scram_sha512,
    # oauthbearer, gssapi, or none), whatever the chart's own spelling of the mechanism.
    for secret in rendered.of_kind("Secret"):
        if secret["metadata"]["name"].endswith("-keda"):
            sasl = secret["stringData"]["sasl"]
            assert sasl in {"none", "plaintext", "scram_sha256", "scram_sha512"}, sasl
    scaled_names = {obj["spec"]["scaleTargetRef"]["name"] for obj in scaled}
    for workload in workloads(rendered):
        if workload["metadata"]["name"] in scaled_names:
            assert "replicas" not in workload["spec"], "KEDA owns the replica count"


def test_autoscaling_beyond_the_partitions_is_refused() -> None:
    done = helm_template("--set", "keda.enabled=true", "--set", "sinks.autoscaling.maxReplicas=7")
    assert done.returncode != 0
    assert "exceeds the 6 partitions" in done.stderr


def _selects(selector: Manifest, labels: Manifest) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_component_has_a_service_budget_and_network_policy(rendered: Rendered) -> None:
    policies_on = _values(rendered, "networkPolicy", "enabled")
    for workload in workloads(rendered):
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        name = workload["metadata"]["name"]
        services = [
            s for s in rendered.of_kind("Service") if _selects(s["spec"]["selector"], labels)
        ]
        assert services, f"{name} has no Service"
        assert services[0]["spec"]["ports"][0]["name"] == _health_port(rendered, workload)[0], name
        budgets = rendered.of_kind("PodDisruptionBudget")
        assert any(_selects(b["spec"]["selector"]["matchLabels"], labels) for b in budgets), name
        policies = [
            p
            for p in rendered.of_kind("NetworkPolicy")
            if _selects(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert len(policies) == (1 if policies_on else 0), name


def test_egress_reaches_only_kafka_registry_stores_and_dns(rendered: Rendered) -> None:
    def ports(target: str) -> set[int]:
        return set(_values(rendered, "networkPolicy", target, "ports"))

    allowed = {
        *ports("kafka"),
        *ports("postgres"),
        *ports("search"),
        *ports("dns"),
        *ports("externalRegistry"),
        _values(rendered, "registry", "port"),
    }
    for policy in rendered.of_kind("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in policy["spec"]["egress"]:
            assert rule["to"], "an egress rule without peers would allow any destination"
            assert {port["port"] for port in rule["ports"]} <= allowed
        component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
        if not component.startswith("sink-") and component != "query":
            assert not egress_ports & (ports("postgres") | ports("search")), component
        for rule in policy["spec"].get("ingress") or []:
            assert rule["from"], "an ingress rule without peers would allow anyone"


@pytest.mark.parametrize("mode", ["scram", "mtls", "none"])
def test_kafka_security_modes_set_the_protocol_and_files(mode: str) -> None:
    rendered = render(None, f"kafka.security.mode={mode}")
    settings = rendered.named("ConfigMap", "demo-cqrs-pipeline-settings")["data"]
    expected = {"scram": "SASL_SSL", "mtls": "SSL", "none": "SSL"}[mode]
    assert settings["CQRS_KAFKA__SECURITY_PROTOCOL"] == expected
    assert settings["CQRS_KAFKA__SSL_CAFILE"] == "/etc/cqrs/kafka-ca/ca.crt"
    assert ("CQRS_KAFKA__SSL_CERTFILE" in settings) == (mode == "mtls")
    assert ("CQRS_KAFKA__SASL_MECHANISM" in settings) == (mode == "scram")
    processor = rendered.named("StatefulSet", "demo-cqrs-pipeline-command-processor")
    mounts = {m["mountPath"] for m in pod_spec(processor)["containers"][0]["volumeMounts"]}
    assert ("/etc/cqrs/kafka-client" in mounts) == (mode == "mtls")


@pytest.mark.parametrize(
    ("mechanism", "keda"), [("SCRAM-SHA-512", "scram_sha512"), ("SCRAM-SHA-256", "scram_sha256")]
)
def test_keda_gets_the_sasl_mode_its_kafka_scaler_accepts(mechanism: str, keda: str) -> None:
    done = helm_template(
        "--set", "keda.enabled=true", "--set", f"kafka.security.scram.mechanism={mechanism}"
    )
    assert done.returncode == 0, done.stderr
    [secret] = [
        obj
        for obj in yaml.safe_load_all(done.stdout)
        if obj and obj["kind"] == "Secret" and obj["metadata"]["name"].endswith("-keda")
    ]
    assert secret["stringData"]["sasl"] == keda


@pytest.mark.parametrize("own_account", [True, False], ids=["chart-account", "given-account"])
def test_the_migrations_hook_runs_a_real_command_under_an_account_that_exists_first(
    own_account: bool,
) -> None:
    rendered = render(
        None,
        "postgres.migrations.enabled=true",
        f"serviceAccount.create={str(own_account).lower()}",
        "serviceAccount.name=team-runner",
    )
    (job,) = rendered.of_kind("Job")
    args = pod_spec(job)["containers"][0]["args"]
    known = subprocess.run(
        [sys.executable, "-m", "cqrs", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert known.returncode == 0, f"cqrs {' '.join(args)}: {known.stderr}"
    assert args[-2:] == ["--store", "postgres"], "the Job gets no search credentials"
    account = pod_spec(job)["serviceAccountName"]
    if not own_account:
        assert account == "team-runner"  # the operator's, which exists before the release
        return
    hooks = {
        obj["metadata"]["name"]: obj["metadata"].get("annotations", {})
        for obj in rendered.of_kind("ServiceAccount")
    }
    job_hook = job["metadata"]["annotations"]
    assert "pre-install" in hooks[account]["helm.sh/hook"], "a pre-install Job needs a hook account"
    assert int(hooks[account]["helm.sh/hook-weight"]) < int(job_hook["helm.sh/hook-weight"])
