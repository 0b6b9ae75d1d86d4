"""The read side: sinks that turn the event log into read models.

Every sink runs under one runner (``sinks.runner.SinkRunner``): its own
consumer group ``cqrs-sink-<projection>``, batching by size and time, flush
before any offset commit, retries with backoff while consumption is paused,
a dead-letter topic for events that can never be applied, graceful shutdown.
A sink implements the small interface of ``sinks.base``.

psycopg and the search clients are imported only in this package.
"""
