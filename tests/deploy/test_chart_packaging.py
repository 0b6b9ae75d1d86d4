"""What an operator meets besides the manifests: the values schema, NOTES.txt, helm test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy.topic_manifests import CHART_DIR
from tests.deploy.chart import KUBERNETES_VERSION, helm_binary, helm_template, render


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("commandProcessor.replicas=abc", "/commandProcessor/replicas"),
        ("search.engine=solr", "/search/engine"),
        ("commandProcesor.replicas=3", "additional properties 'commandProcesor'"),
        ("kafka.security.mode=ssl", "/kafka/security/mode"),
        ("image.digest=latest", "/image/digest"),
        ("processManagers.fulfilment.replica=2", "/processManagers/fulfilment"),
        ("sinks.projections.order-summary.stores[0]=mysql", "/sinks/projections/order-summary"),
        ("metrics.port=70000", "/metrics/port"),
        ("query.replicas=abc", "/query/replicas"),
        ("query.poolSize=0", "/query/poolSize"),
        ("query.maxWaitSeconds=0", "/query/maxWaitSeconds"),
        ("query.apiKeys.secret=keys", "/query/apiKeys"),
        ("postgres.reader.username=me", "/postgres/reader"),
        ("networkPolicy.query.ingress=all", "/networkPolicy/query/ingress"),
    ],
)
def test_a_wrong_value_fails_with_its_path(setting: str, path: str) -> None:
    done = helm_template("--set", setting)
    assert done.returncode != 0, f"{setting} rendered"
    assert path in done.stderr, done.stderr


def test_a_digest_pins_every_image() -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render(None, f"image.digest={digest}")
    images = {
        c["image"]
        for obj in rendered.objects
        if obj["kind"] in {"Deployment", "StatefulSet"}
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"cqrs-pipeline@{digest}"}


def test_helm_test_runs_cqrs_lag_with_the_kafka_credentials_and_restricted() -> None:
    (pod,) = [o for o in render(None).objects if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    known = subprocess.run(
        [sys.executable, "-m", "cqrs", *container["args"], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert known.returncode == 0, known.stderr
    assert {e["name"] for e in container["env"]} == {"CQRS_KAFKA__SASL_PASSWORD"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_notes_name_every_process_and_how_to_check_them(tmp_path: Path) -> None:
    # NOTES.txt is not rendered by `helm template`: render it as a value of a manifest.
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes-as-manifest.yaml").write_text(
        '{{- define "notes" -}}' + notes + '{{- end -}}\nnotes: {{ include "notes" . | toJson }}\n'
    )
    done = subprocess.run(
        [
            helm_binary(),
            "template",
            "demo",
            str(chart),
            "--kube-version",
            KUBERNETES_VERSION,
            "--show-only",
            "templates/notes-as-manifest.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = yaml.safe_load(done.stdout.split("---", 1)[1])["notes"]
    for line in (
        "StatefulSet demo-cqrs-pipeline-command-processor: cqrs worker",
        "StatefulSet demo-cqrs-pipeline-pm-fulfilment: cqrs saga fulfilment",
        "Deployment demo-cqrs-pipeline-sink-order-summary: cqrs sink run order-summary",
        "Deployment demo-cqrs-pipeline-query: cqrs query serve --host 0.0.0.0 --port 8000",
        "port-forward svc/demo-cqrs-pipeline-query 8000",
        "http://localhost:8000/docs",
        "helm test demo",
    ):
        assert line in text, text


def test_the_chart_lints_and_packages_with_its_schema_and_without_stray_files(
    tmp_path: Path,
) -> None:
    helm = helm_binary()
    lint = subprocess.run(
        [helm, "lint", str(CHART_DIR), "--strict", "--kube-version", KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    chart = tmp_path / "cqrs-pipeline"
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "__pycache__").mkdir()
    (chart / "templates" / "__pycache__" / "stray.pyc").write_bytes(b"")
    subprocess.run(
        [helm, "package", str(chart), "-d", str(tmp_path)], check=True, capture_output=True
    )
    listing = subprocess.run(
        ["tar", "tzf", str(next(tmp_path.glob("*.tgz")))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "cqrs-pipeline/values.schema.json" in listing
    assert "cqrs-pipeline/templates/NOTES.txt" in listing
    assert not any("__pycache__" in name for name in listing)
