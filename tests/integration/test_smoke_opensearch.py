"""OpenSearch round trip: a document indexed with a mapping is found by a full-text query."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opensearchpy import NotFoundError, OpenSearch

from core.settings import Settings


@pytest.fixture
def client(local_stack: Settings) -> OpenSearch:
    return OpenSearch(hosts=[local_stack.search.url])


@pytest.fixture
def index(client: OpenSearch, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("smoke")
    client.indices.create(
        index=name,
        body={
            "mappings": {"properties": {"customer": {"type": "keyword"}, "notes": {"type": "text"}}}
        },
    )
    yield name
    client.indices.delete(index=name)


def test_indexed_documents_are_found_by_full_text_and_exact_queries(
    client: OpenSearch, index: str
) -> None:
    documents = {
        "o-1": {"customer": "c-ada", "notes": "leave the parcel with the neighbour"},
        "o-2": {"customer": "c-bob", "notes": "fragile glassware, handle with care"},
        "o-3": {"customer": "c-ada", "notes": "gift wrap please"},
    }
    for doc_id, body in documents.items():
        client.index(index=index, id=doc_id, body=body)
    client.indices.refresh(index=index)

    text = client.search(index=index, body={"query": {"match": {"notes": "glassware"}}})
    exact = client.search(index=index, body={"query": {"term": {"customer": "c-ada"}}})

    assert [hit["_id"] for hit in text["hits"]["hits"]] == ["o-2"]
    assert sorted(hit["_id"] for hit in exact["hits"]["hits"]) == ["o-1", "o-3"]
    assert client.get(index=index, id="o-3")["_source"] == documents["o-3"]


def test_auto_index_creation_is_off(client: OpenSearch, unique_name: Callable[[str], str]) -> None:
    with pytest.raises(NotFoundError):
        client.index(index=unique_name("nope"), id="1", body={"a": 1})
