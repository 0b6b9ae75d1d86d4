"""Search fixtures: a backend on the stack's OpenSearch and a unique index prefix per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from core.settings import SearchSettings, Settings
from sinks.search.backend import SearchBackend, open_backend


@pytest.fixture
def search_settings(local_stack: Settings, unique_name: Callable[[str], str]) -> SearchSettings:
    # Replicas 0: the local node is alone, so the index is green at once.
    return local_stack.search.model_copy(
        update={"index_prefix": unique_name("t").lower(), "replicas": 0}
    )


@pytest.fixture
def backend(search_settings: SearchSettings) -> Iterator[SearchBackend]:
    opened = open_backend(search_settings)
    yield opened
    for name in opened.indices(f"{search_settings.index_prefix}-*"):
        opened.delete_index(name)
    opened.close()
