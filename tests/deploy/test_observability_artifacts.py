"""The alert rules and the Grafana dashboard speak real PromQL about real metrics.

Every expression is parsed with promql-parser (a port of Prometheus' own parser)
and may only name metrics that the processes export (core/metrics.py) or
Prometheus' histogram series of them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
from prometheus_client import REGISTRY

import core.metrics  # noqa: F401 - registers the pipeline's metrics
from deploy.topic_manifests import CHART_DIR
from tests.deploy.chart import render

DASHBOARD = CHART_DIR / "files" / "grafana-dashboard.json"
# Grafana variables, replaced by what Grafana would substitute.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$group": ".*"}


def _exported_series() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("cqrs_"):
            continue
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def _metric_names(expression: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if child is not None:
                visit(child)
        for arg in getattr(node, "args", None) or []:
            visit(arg)

    visit(promql_parser.parse(expression))
    return names


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            expressions.append(expression)
    return expressions


def _rule_expressions() -> dict[str, str]:
    rendered = render(None, "metrics.prometheusRule.enabled=true")
    (rule,) = rendered.of_kind("PrometheusRule")
    return {
        item["alert"]: str(item["expr"])
        for group in rule["spec"]["groups"]
        for item in group["rules"]
    }


def test_every_alert_parses_and_names_only_exported_metrics() -> None:
    exported = _exported_series()
    for alert, expression in _rule_expressions().items():
        names = _metric_names(expression)
        assert names, f"{alert} reads no metric"
        assert names <= exported, f"{alert} names unknown metrics {names - exported}"


def test_alerts_cover_lag_growth_dead_letters_and_stuck_partitions() -> None:
    alerts = _rule_expressions()
    assert "cqrs_consumer_lag_records" in alerts["CqrsConsumerLagGrowing"]
    assert "cqrs_dead_letters_total" in alerts["CqrsDeadLetters"]
    assert "cqrs_consumer_lag_seconds" in alerts["CqrsPartitionStuck"]


def test_every_dashboard_query_parses_and_names_only_exported_metrics() -> None:
    exported = _exported_series()
    seen: set[str] = set()
    for expression in _dashboard_expressions():
        names = _metric_names(expression)
        assert names <= exported, f"{expression} names unknown metrics {names - exported}"
        seen |= names
    wanted = {
        "cqrs_commands_total",  # throughput, write side
        "cqrs_events_applied_total",  # throughput, read side
        "cqrs_consumer_lag_records",  # lag per group and partition
        "cqrs_consumer_lag_seconds",  # time lag
        "cqrs_dead_letters_total",  # DLQ rate
        "cqrs_sink_errors_total",  # errors
        "cqrs_transaction_commit_seconds_bucket",  # commit latency
    }
    assert wanted <= seen


def test_dashboard_uses_a_datasource_variable_and_per_partition_lag() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {item["name"] for item in dashboard["templating"]["list"]}
    assert {"datasource", "group"} <= variables
    legends = [
        target.get("legendFormat", "")
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert any(re.search(r"\{\{partition\}\}", legend) for legend in legends)
