"""PostgreSQL read models: the database edge, migrations and table sets, the generic sink.

Layout in the database (``B`` = ``sinks.postgres_schema``, default ``read_models``):

- ``B.schema_migrations`` and ``B.projection_sets`` (which table set is live);
- one *table set* per projection and generation, a schema of its own named
  ``B__<projection>_<generation>``, holding the projection's tables, its
  ``projection_offsets`` and its ``publication_outbox``;
- views ``B.<table>`` over the live table set: what readers query. A rebuild
  fills a new generation and replaces the views in one transaction.
"""
