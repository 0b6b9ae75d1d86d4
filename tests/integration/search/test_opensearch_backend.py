"""The backend contract against the stack's real OpenSearch node."""

from __future__ import annotations

from tests.integration.search.backend_contract import SearchBackendContract


class TestOpenSearchBackend(SearchBackendContract):
    """Runs every contract test on OpenSearch (engine from the stack's settings)."""
