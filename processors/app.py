"""The Faust app every worker runs, configured from the settings.

Exactly-once is on: each worker process has one transactional producer, and
everything one event leads to (events, command result, the table's changelog
write) commits with its offset in that producer's transaction —
``processors.transactions`` explains the layer that makes this hold under
kills and rebalances. The commit interval bounds how long a result waits to
become visible (read_committed).
"""

from __future__ import annotations

import ssl

import faust

from cqrs.settings import Settings
from processors.instance import claim_transactional_id
from processors.transactions import PipelineApp


def create_app(settings: Settings, app_id: str | None = None) -> faust.App:
    processor = settings.processor
    app_id = app_id or processor.app_id
    datadir = processor.datadir / app_id  # one per app: the worker and the saga may share one
    datadir.mkdir(parents=True, exist_ok=True)
    return PipelineApp(
        app_id,
        instance=claim_transactional_id(app_id, datadir),
        transaction_timeout_s=processor.transaction_timeout_s,
        broker=[
            f"kafka://{server.strip()}" for server in settings.kafka.bootstrap_servers.split(",")
        ],
        broker_credentials=_credentials(settings),
        processing_guarantee=processor.processing_guarantee,
        store=processor.store,
        datadir=str(datadir),
        topic_partitions=processor.partitions,
        topic_replication_factor=processor.replication_factor,
        broker_commit_interval=processor.commit_interval_s,
        broker_commit_every=1000,
        broker_session_timeout=processor.session_timeout_s,
        broker_heartbeat_interval=min(3.0, processor.session_timeout_s / 4),
        table_standby_replicas=processor.standby_replicas,
        web_enabled=False,
        # Faust's own codecs never touch our topics: every topic and table uses "raw".
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
    )


def _credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    kafka = settings.kafka
    context = None
    if kafka.security_protocol in {"SSL", "SASL_SSL"}:
        context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile and kafka.ssl_keyfile:
            context.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile))
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context else None
