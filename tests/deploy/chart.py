"""Render the Helm chart with the pinned Helm and hand back the objects."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deploy.topic_manifests import CHART_DIR

INSTALL_HELM = CHART_DIR.parent / "install-helm.sh"
KUBERNETES_VERSION = "1.33.0"
# Value sets every render test runs with: the defaults and the chart's ci/ files.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{
        path.name.removesuffix("-values.yaml"): path
        for path in sorted(CHART_DIR.glob("ci/*-values.yaml"))
    },
}

Manifest = dict[str, Any]


@cache
def helm_binary() -> str:
    """The pinned Helm, built into ~/.cache/cqrs/helm on first use (see install-helm.sh)."""
    done = subprocess.run(
        ["bash", str(INSTALL_HELM)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not install Helm:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Rendered:
    objects: list[Manifest]
    values: Manifest  # the values files given (not the chart defaults)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> Manifest:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"no {kind} named {name}")


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            helm_binary(),
            "template",
            "demo",
            str(CHART_DIR),
            "--namespace",
            "cqrs",
            "--kube-version",
            KUBERNETES_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def render(values_file: Path | None = None, *set_values: str) -> Rendered:
    args = [*(["--values", str(values_file)] if values_file else [])]
    for item in set_values:
        args += ["--set", item]
    done = helm_template(*args)
    if done.returncode != 0:
        raise AssertionError(f"helm template failed:\n{done.stderr}")
    objects = [obj for obj in yaml.safe_load_all(done.stdout) if obj]
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    return Rendered(objects, values or {})


@cache
def render_set(name: str) -> Rendered:
    return render(VALUE_SETS[name])


def chart_defaults() -> Manifest:
    loaded: Manifest = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    return loaded


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def workloads(rendered: Rendered) -> list[Manifest]:
    return [obj for obj in rendered.objects if obj["kind"] in WORKLOAD_KINDS]
