"""Every object the chart renders validates offline: Kubernetes kinds against the
schemas shipped in kubernetes-validate (strict: unknown fields fail), custom
resources against the CRD schemas under crd_schemas/ (see its README)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import KUBERNETES_VERSION, VALUE_SETS, Manifest, Rendered, render_set

CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
CUSTOM_KINDS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafkatopic-v1.yaml",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.yaml",
}


@cache
def _crd_validator(filename: str) -> jsonschema.Draft202012Validator:
    schema: dict[str, Any] = yaml.safe_load((CRD_SCHEMAS / filename).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(obj: Manifest) -> list[str]:
    """Why ``obj`` is invalid (empty when valid); unknown kinds are an error too."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    custom = CUSTOM_KINDS.get((obj["apiVersion"], obj["kind"]))
    if custom:
        return [
            f"{where}: {'.'.join(map(str, error.path))}: {error.message}"
            for error in _crd_validator(custom).iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {'.'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where}: no schema to validate against: {error.message}"]
    return []


def test_every_rendered_object_is_valid(rendered: Rendered) -> None:
    assert rendered.objects
    problems = [problem for obj in rendered.objects for problem in schema_errors(obj)]
    assert problems == []


def test_value_sets_cover_every_custom_kind() -> None:
    kinds = {
        (obj["apiVersion"], obj["kind"]) for name in VALUE_SETS for obj in render_set(name).objects
    }
    assert set(CUSTOM_KINDS) <= kinds


def _first(kind: str) -> Manifest:
    for name in VALUE_SETS:
        for obj in render_set(name).objects:
            if obj["kind"] == kind:
                return copy.deepcopy(obj)
    raise AssertionError(f"no value set renders a {kind}")


def test_validation_rejects_an_unknown_field_in_a_kubernetes_kind() -> None:
    deployment = _first("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    assert any("securityContex" in problem for problem in schema_errors(deployment))


def test_validation_rejects_a_misspelt_kafka_topic_field() -> None:
    topic = _first("KafkaTopic")
    topic["spec"]["partition"] = topic["spec"].pop("partitions")
    assert any("partition" in problem for problem in schema_errors(topic))


def test_validation_rejects_a_scaler_threshold_that_is_not_a_string() -> None:
    scaled = _first("ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 100
    assert any("lagThreshold" in problem for problem in schema_errors(scaled))


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_validation_rejects_a_bad_duration(kind: str) -> None:
    obj = _first(kind)
    if kind == "ServiceMonitor":
        obj["spec"]["endpoints"][0]["interval"] = "30 seconds"
    else:
        obj["spec"]["groups"][0]["rules"][0]["for"] = "fifteen minutes"
    assert schema_errors(obj) != []
