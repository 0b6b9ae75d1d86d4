"""The shop's read side: its projections (PostgreSQL, search) and the event models they share.

Built on the public read-model API (``cqrs.read_models``) and the sinks' stores;
``aggregates/read_models.py`` names the PostgreSQL ones for the domain.
"""
