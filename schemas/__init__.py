"""Avro contracts, their Confluent wire-format codec, the registry client and server, upcasters."""
