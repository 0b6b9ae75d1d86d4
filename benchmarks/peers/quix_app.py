"""The quix-streams peer: the same decision per command in a quix-streams application.

Exactly-once (``processing_guarantee="exactly-once"``), the aggregate's state in
quix's RocksDB store (with its changelog topic), committed every
``--commit-interval``. Values pass as bytes and are decoded and encoded by the same
plain code as the other Python peer, so what differs is the framework. Runs in its
own virtualenv (quix-streams pins an older confluent-kafka than the product).

    python -m benchmarks.peers.quix_app --bootstrap ... --registry ... --prefix ...
        --group ... --state-dir ...
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application  # type: ignore[import-not-found]
from quixstreams.models.serializers import (  # type: ignore[import-not-found]
    SerializationContext,
    Serializer,
)

from benchmarks.peers.decider import Decider, Decision, peer_options

STATE_KEY = "aggregate"


class EventBytes(Serializer):  # type: ignore[misc]
    def __call__(self, value: Decision, ctx: SerializationContext) -> bytes | None:
        return value.event


class ResultBytes(Serializer):  # type: ignore[misc]
    def __call__(self, value: Decision, ctx: SerializationContext) -> bytes:
        return value.result


def main() -> None:
    options = peer_options()
    commands, events = options.prefix + "commands", options.prefix + "events"
    results = options.prefix + "command-results"
    decider = Decider(options.registry, events, results)
    app = Application(
        broker_address=options.bootstrap,
        consumer_group=options.group,
        auto_offset_reset="earliest",
        commit_interval=options.commit_interval,
        processing_guarantee="exactly-once",
        state_dir=options.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(commands, key_deserializer="bytes", value_deserializer="bytes")
    event_topic = app.topic(events, key_serializer="bytes", value_serializer=EventBytes())
    result_topic = app.topic(results, key_serializer="bytes", value_serializer=ResultBytes())

    def decide(value: bytes, state: Any) -> Decision:
        decision = decider.decide(value, state.get(STATE_KEY))
        state.set(STATE_KEY, decision.state)
        return decision

    decisions = app.dataframe(source).apply(decide, stateful=True)
    decisions.to_topic(result_topic, key=lambda decision: decision.result_key)
    decisions.filter(lambda decision: decision.event is not None).to_topic(event_topic)
    print("quix app ready", flush=True)
    app.run()


if __name__ == "__main__":
    main()
