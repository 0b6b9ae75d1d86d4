"""Building blocks of a search projection's mapping, and the index settings.

A mapping works on OpenSearch and Elasticsearch alike when it keeps to these:
``keyword`` for identifiers and codes, ``text_field`` (text with a ``keyword``
sub-field for sorting and aggregations) for people-facing text, ``copy_to``
``SEARCH_TEXT`` for one-box search, ``LONG`` for money in minor units and
``DATE`` for ISO-8601 UTC timestamps. ``"dynamic": "strict"`` makes a document
with a field the mapping does not know a refusal (HTTP 400, dead-lettered)
instead of a silently widened mapping.
"""

from __future__ import annotations

from typing import Any

from core.settings import SearchSettings

SEARCH_TEXT = "search_text"

KEYWORD = {"type": "keyword"}
LONG = {"type": "long"}
INTEGER = {"type": "integer"}
DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}


def text_field(*, copy: bool = True) -> dict[str, Any]:
    """People-facing text, with a ``keyword`` sub-field; copied to ``SEARCH_TEXT``."""
    field: dict[str, Any] = {
        "type": "text",
        "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
    }
    if copy:
        field["copy_to"] = SEARCH_TEXT
    return field


def copied_keyword() -> dict[str, Any]:
    """A keyword that one-box search (``SEARCH_TEXT``) finds too."""
    return {"type": "keyword", "copy_to": SEARCH_TEXT}


def index_settings(search: SearchSettings, *, bulk_load: bool = False) -> dict[str, Any]:
    """Index settings; ``bulk_load`` (a rebuild) turns refreshes and replicas off until done."""
    return {
        "number_of_shards": search.shards,
        "number_of_replicas": 0 if bulk_load else search.replicas,
        "refresh_interval": "-1" if bulk_load else search.refresh_interval,
    }


def live_settings(search: SearchSettings) -> dict[str, Any]:
    """What a rebuilt index gets before it goes live (the dynamic part of ``index_settings``)."""
    return {
        "number_of_replicas": search.replicas,
        "refresh_interval": search.refresh_interval,
    }
