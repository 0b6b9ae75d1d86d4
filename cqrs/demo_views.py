"""The demo's read-back, through the query service's HTTP API as any client would read it."""

from __future__ import annotations

from typing import Any

import httpx

from core.errors import PipelineError


class QueryApi:
    """A small reader of ``cqrs query serve`` (loopback, no key: the local stack's)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=30)
        self.token: str | None = None  # of the last command sent: reads wait for it

    def close(self) -> None:
        self._http.close()

    def command(self, kind: str, aggregate_id: str, **payload: Any) -> dict[str, Any]:
        """Send a command through the gateway; its answer (with a consistency token)."""
        try:
            answer = self._http.post(
                f"/commands/{kind}", json={"aggregate_id": aggregate_id, "payload": payload}
            )
        except httpx.HTTPError as error:
            raise PipelineError(f"POST /commands/{kind} at {self.url}: {error}") from error
        if answer.status_code != 200:
            raise PipelineError(f"POST /commands/{kind}: {answer.status_code} {answer.text[:300]}")
        self.token = answer.json().get("consistency_token")
        return dict(answer.json())

    def _get(self, path: str, **params: str) -> Any:
        headers = {"X-Consistency-Token": self.token} if self.token else {}
        try:
            answer = self._http.get(path, params=params, headers=headers)
        except httpx.HTTPError as error:
            raise PipelineError(f"GET {path} at {self.url}: {error}") from error
        if answer.status_code != 200:
            raise PipelineError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    def _items(
        self, projection: str, columns: tuple[str, ...], **params: str
    ) -> list[dict[str, Any]]:
        found = self._get(f"/projections/{projection}", limit="100", **params)["items"]
        return [{column: item.get(column) for column in columns} for item in found]

    def order_statuses(self, order_ids: list[str]) -> dict[str, str]:
        """Current status per order in the ``order-summary`` projection."""
        found = self._items("order-summary", ("order_id", "status"), order_id=",".join(order_ids))
        return {str(row["order_id"]): str(row["status"]) for row in found}

    def orders(self, order_ids: list[str]) -> list[dict[str, Any]]:
        columns = ("order_id", "customer_id", "status", "item_count", "total_cents", "version")
        return self._items("order-summary", columns, order_id=",".join(order_ids), order="order_id")

    def customer_history(self, customer: str, order_ids: list[str]) -> list[dict[str, Any]]:
        """A customer's orders among ``order_ids``, newest first."""
        columns = ("customer_id", "order_id", "status", "total_cents", "placed_at")
        return self._items(
            "order-summary",
            columns,
            customer_id=customer,
            order_id=",".join(order_ids),
            order="-placed_at",
        )

    def inventory(self, skus: list[str]) -> list[dict[str, Any]]:
        columns = ("sku", "name", "on_hand", "reserved", "available", "version")
        return self._items("inventory-levels", columns, sku=",".join(skus), order="sku")

    def sales(self, skus: list[str]) -> list[dict[str, Any]]:
        columns = ("granularity", "window_start", "sku", "revenue_cents", "units", "order_count")
        return self._items("sales-analytics", columns, sku=",".join(skus), granularity="MINUTE")

    def search_orders(self, text: str, **filters: str) -> list[dict[str, Any]]:
        return list(self._get("/search/search-orders", q=text, size="50", **filters)["items"])
