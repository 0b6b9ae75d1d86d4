"""Peers of the command processor for the write-side benchmark, each run as its own process.

They import nothing of the product (only fastavro, the Kafka client and the
standard library), so the quix-streams peer can run in its own virtualenv.
"""
