"""Microsoft Graph v1.0 calls with an app-only token for one tenant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from shared.graph.errors import GraphError, GraphUnavailable
from shared.transport import retry


class GraphClient:
    def __init__(self, base_url: str, token: Callable[[], str], session: requests.Session) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._session = session

    def request(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> dict[str, Any]:
        url = path if path.startswith("http") else f"{self._base}{path}"
        headers = {"Authorization": f"Bearer {self._token()}", **kwargs.pop("headers", {})}
        try:
            response = retry.send(self._session, method, url, headers=headers, idempotent=idempotent, **kwargs)
        except requests.RequestException as error:
            raise GraphUnavailable(0, "unreachable", f"Microsoft Graph could not be reached ({type(error).__name__})") from error
        if response.status_code >= 400:
            try:
                error_body = response.json().get("error", {})
            except ValueError:
                error_body = {}
            error_class = GraphUnavailable if response.status_code in retry.RETRIED_STATUSES else GraphError
            raise error_class(
                response.status_code,
                str(error_body.get("code", "unknown")),
                str(error_body.get("message", response.reason)),
                response.headers.get("request-id", ""),
            )
        return response.json() if response.content else {}

    def organization(self) -> dict[str, Any]:
        values = self.request("GET", "/organization").get("value") or []
        return dict(values[0]) if values else {}
