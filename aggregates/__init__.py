"""The pure domain: aggregate states, commands, events, ``decide`` and ``evolve``.

No Kafka, no IO, no Avro here: ids and timestamps arrive on commands,
so everything is deterministic and testable without infrastructure.
"""
