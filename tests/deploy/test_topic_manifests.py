"""The chart's topic table is generated from schemas/topics.py and must never drift from it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aggregates.shop import domain as shop
from cqrs.cli import app
from deploy import topic_manifests
from schemas.registry.store import TOPIC_CONFIG
from schemas.topics import domain_topic_specs


def test_committed_topic_table_equals_a_fresh_generation() -> None:
    committed = topic_manifests.TOPICS_FILE.read_text()
    assert committed == topic_manifests.render(), (
        "deploy/helm/cqrs-pipeline/files/topics.json is stale: run `cqrs deploy topics`"
    )


def test_table_carries_every_topic_with_its_partitions_and_config() -> None:
    table = json.loads(topic_manifests.render())
    by_name = {entry["name"]: entry for entry in table["productTopics"]}
    assert list(by_name) == [spec.name for spec in domain_topic_specs(shop)]
    for spec in domain_topic_specs(shop):
        assert by_name[spec.name]["partitions"] == spec.partitions
        assert by_name[spec.name]["config"] == spec.config
        assert by_name[spec.name]["deadLetter"] == spec.dead_letter
    assert table["schemaTopic"] == {"partitions": 1, "config": TOPIC_CONFIG}


def test_check_fails_on_a_stale_file_and_write_repairs_it(tmp_path: Path) -> None:
    target = tmp_path / "topics.json"
    target.write_text('{"productTopics": []}\n')
    runner = CliRunner()
    stale = runner.invoke(app, ["deploy", "topics", "--check", "--path", str(target)])
    assert stale.exit_code == 1
    assert "stale" in stale.output
    wrote = runner.invoke(app, ["deploy", "topics", "--path", str(target)])
    assert wrote.exit_code == 0
    assert target.read_text() == topic_manifests.render()
    current = runner.invoke(app, ["deploy", "topics", "--check", "--path", str(target)])
    assert current.exit_code == 0
