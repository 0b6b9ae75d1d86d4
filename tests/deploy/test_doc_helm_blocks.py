"""docs/operations.md's Helm commands, rendered with the pinned Helm (running them needs a
cluster): the values they set are accepted by values.schema.json and do what the text says."""

from __future__ import annotations

import shlex

from tests.deploy.chart import Rendered, render
from tests.doc_blocks import block, shell_commands

OPERATIONS = "docs/operations.md"
RELEASE = "demo"  # the release name tests/deploy/chart.py renders with; the guide's is "shop"


def _helm_sets(command: str) -> list[str]:
    words = shlex.split(command)
    return [words[i + 1] for i, word in enumerate(words) if word == "--set"]


def _images(rendered: Rendered) -> set[str]:
    return {
        container["image"]
        for kind in ("Deployment", "StatefulSet")
        for workload in rendered.of_kind(kind)
        for container in workload["spec"]["template"]["spec"]["containers"]
    }


def test_the_install_renders() -> None:
    [install] = shell_commands(
        block(OPERATIONS, "helm install shop deploy/helm/cqrs-pipeline -n shop \\")
    )
    assert shlex.split(install)[:4] == ["helm", "install", "shop", "deploy/helm/cqrs-pipeline"]
    rendered = render(None, *_helm_sets(install))
    assert _images(rendered) == {"registry.example/cqrs-pipeline:0.1.0"}


def test_the_upgrade_steps_render() -> None:
    readers, *waits, writer = shell_commands(
        block(OPERATIONS, "helm upgrade shop deploy/helm/cqrs-pipeline --reuse-values \\")
    )
    stopped = render(None, *_helm_sets(readers))
    [processor] = [
        s
        for s in stopped.of_kind("StatefulSet")
        if s["metadata"]["name"].endswith("command-processor")
    ]
    assert processor["spec"]["replicas"] == 0
    assert _images(stopped) == {f"{image.rsplit(':', 1)[0]}:0.2.0" for image in _images(stopped)}
    # The waits select by the release label, by kind: every workload but the stopped writer.
    kinds = {"deploy": "Deployment", "statefulset": "StatefulSet"}
    waited = []
    for wait in waits:
        words = shlex.split(wait.split("#")[0])
        assert words[:5] == ["kubectl", "-n", "shop", "rollout", "status"]
        assert words[6:] == ["-l", "app.kubernetes.io/instance=shop"]
        waited += [
            w["metadata"]["name"]
            for w in stopped.of_kind(kinds[words[5]])
            if w["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        ]
    workloads = stopped.of_kind("Deployment") + stopped.of_kind("StatefulSet")
    assert set(waited) == {w["metadata"]["name"] for w in workloads}
    assert any("pm-" in name for name in waited) and any("sink-" in name for name in waited)
    back = render(None, *_helm_sets(writer))
    [processor] = [
        s
        for s in back.of_kind("StatefulSet")
        if s["metadata"]["name"].endswith("command-processor")
    ]
    assert processor["spec"]["replicas"] == 3
