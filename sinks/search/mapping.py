"""The explicit mapping of the order index (identical on OpenSearch and Elasticsearch).

``dynamic: strict``: a document with a field the mapping does not know is
refused (HTTP 400) instead of silently widening the mapping, so a schema change
that reaches the index without a mapping change shows up as dead letters.

- identifiers, statuses, currencies, SKUs, postal codes: ``keyword``;
- people-facing text (address name, street, city; rejection/cancellation
  reason): ``text`` with a ``keyword`` sub-field for sorting and aggregations;
- ``items`` is ``nested``, so "sku X with quantity > 2" matches within one line;
- ``search_text`` collects the free-text fields (``copy_to``) for one-box search;
- money in minor units (``long``), timestamps as ``date`` (ISO-8601, UTC).
"""

from __future__ import annotations

from typing import Any

from core.settings import SearchSettings

SEARCH_TEXT = "search_text"

_KEYWORD = {"type": "keyword"}
_LONG = {"type": "long"}
_DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}


def _text(*, copy: bool = True) -> dict[str, Any]:
    field: dict[str, Any] = {
        "type": "text",
        "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
    }
    if copy:
        field["copy_to"] = SEARCH_TEXT
    return field


def _copied_keyword() -> dict[str, Any]:
    return {"type": "keyword", "copy_to": SEARCH_TEXT}


ORDER_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "order_id": _copied_keyword(),
        "customer_id": _copied_keyword(),
        "status": _KEYWORD,
        "status_reason": _text(),
        "items": {
            "type": "nested",
            "properties": {
                "sku": _copied_keyword(),
                "quantity": {"type": "integer"},
                "unit_price_cents": _LONG,
                "amount_cents": _LONG,
            },
        },
        "item_count": {"type": "integer"},
        "currency": _KEYWORD,
        "total_cents": _LONG,
        "shipping_address": {
            "properties": {
                "name": _text(),
                "street": _text(),
                "city": _text(),
                "postal_code": _copied_keyword(),
                "country": _KEYWORD,
            }
        },
        "carrier": _copied_keyword(),
        "tracking_number": _copied_keyword(),
        "placed_at": _DATE,
        "updated_at": _DATE,
        "shipped_at": _DATE,
        "version": _LONG,
        "last_event_id": _KEYWORD,
        SEARCH_TEXT: {"type": "text"},
    },
}


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
