"""How a Faust worker's state becomes its /readyz answer (pure: Faust's flags stood in for)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from processors.health import readiness_of


def app_state(
    *,
    rebalancing: bool = False,
    actives_ready: bool = True,
    in_recovery: bool = False,
    left: int = 0,
) -> Any:
    recovery = SimpleNamespace(in_recovery=in_recovery, active_remaining_total=lambda: left)
    tables = SimpleNamespace(actives_ready=actives_ready, recovery=recovery)
    return SimpleNamespace(
        rebalancing=rebalancing, tables=tables, conf=SimpleNamespace(id="cqrs-command-processor")
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (app_state(), (True, "")),
        (
            app_state(rebalancing=True, actives_ready=False),
            (False, "consumer group cqrs-command-processor is rebalancing"),
        ),
        (
            app_state(actives_ready=False, in_recovery=True, left=1234),
            (False, "restoring tables from their changelogs: 1234 records left"),
        ),
        (
            app_state(actives_ready=False),
            (False, "waiting for partitions of consumer group cqrs-command-processor"),
        ),
    ],
)
def test_readiness_follows_rebalances_and_table_recovery(
    state: Any, expected: tuple[bool, str]
) -> None:
    assert readiness_of(state) == expected
