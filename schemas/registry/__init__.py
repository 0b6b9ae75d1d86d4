"""The embedded Confluent-API schema registry: state, Kafka-backed log, HTTP API."""
