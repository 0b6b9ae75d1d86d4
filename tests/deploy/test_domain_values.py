"""The chart follows the domain: `cqrs deploy values` describes it, the chart renders it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from core.settings import Settings
from deploy.domain_values import domain_values, render
from deploy.topic_manifests import TOPICS_FILE
from tests.deploy.chart import chart_defaults, pod_spec, workloads
from tests.deploy.chart import render as render_chart

LIBRARY = "tests.library.domain:domain"


def test_the_charts_defaults_are_what_the_default_domain_generates() -> None:
    generated = domain_values(Settings())
    defaults = chart_defaults()
    assert generated["domain"] == defaults["domain"]
    assert generated["processManagers"] == defaults["processManagers"]
    assert generated["sinks"]["projections"] == defaults["sinks"]["projections"]
    assert generated["sinks"]["eventTopics"] == defaults["sinks"]["eventTopics"]
    assert generated["commandProcessor"] == {
        "aggregates": defaults["commandProcessor"]["aggregates"]
    }
    assert generated["topics"]["table"] == json.loads(TOPICS_FILE.read_text())


def test_another_domain_replaces_the_shops_components_and_topics(tmp_path: Path) -> None:
    values = tmp_path / "library-values.yaml"
    values.write_text(render(Settings(domain=LIBRARY)))
    rendered = render_chart(values)

    by_name = {
        w["metadata"]["name"].removeprefix("demo-cqrs-pipeline-"): w for w in workloads(rendered)
    }
    assert set(by_name) == {
        "command-processor-book",
        "command-processor-member",
        "pm-loans",
        "sink-books",
        "query",
        "lag-exporter",
        "registry",
    }
    assert by_name["pm-loans"]["kind"] == "StatefulSet"
    assert pod_spec(by_name["pm-loans"])["containers"][0]["args"] == ["saga", "loans"]
    assert pod_spec(by_name["sink-books"])["containers"][0]["args"] == ["sink", "run", "books"]
    # A topic pair per aggregate type: a command processor for each, in a group of its own.
    assert pod_spec(by_name["command-processor-member"])["containers"][0]["args"] == [
        "worker",
        "--aggregate",
        "Member",
    ]

    (config,) = rendered.of_kind("ConfigMap")
    assert config["data"]["CQRS_DOMAIN"] == LIBRARY
    topics = {
        t["spec"].get("topicName", t["metadata"]["name"]) for t in rendered.of_kind("KafkaTopic")
    }
    assert "loans-inbox" in topics and "cqrs-loans-loans-changelog" in topics
    assert {"book-commands", "book-events", "member-commands", "member-events"} <= topics
    assert "cqrs-command-processor-book-aggregates-changelog" in topics
    assert not {"commands", "events", "cqrs-command-processor-aggregates-changelog"} & topics
    assert not any("fulfilment" in topic for topic in topics), topics


def test_the_generated_file_is_plain_yaml_with_what_it_was_made_from() -> None:
    text = render(Settings(domain=LIBRARY))
    assert text.startswith("# Chart values of domain 'library' (tests.library.domain:domain)")
    loaded = yaml.safe_load(text)
    assert loaded["processManagers"] == {"fulfilment": None, "loans": {"enabled": True}}


def test_each_aggregate_writer_is_scaled_on_its_own_topic_and_each_sink_on_every_event_topic(
    tmp_path: Path,
) -> None:
    values = tmp_path / "library-values.yaml"
    values.write_text(render(Settings(domain=LIBRARY)))
    rendered = render_chart(values, "keda.enabled=true")

    triggers = {
        scaled["metadata"]["name"].removeprefix("demo-cqrs-pipeline-"): [
            (t["metadata"]["consumerGroup"], t["metadata"]["topic"])
            for t in scaled["spec"]["triggers"]
        ]
        for scaled in rendered.of_kind("ScaledObject")
    }
    assert triggers["command-processor-book"] == [("cqrs-command-processor-book", "book-commands")]
    assert triggers["sink-books"] == [
        ("cqrs-sink-books", "book-events"),
        ("cqrs-sink-books", "member-events"),
    ]
