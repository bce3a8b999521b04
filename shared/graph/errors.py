"""Graph errors carry Graph's own ``error.code`` so callers decide on codes, never messages."""

from __future__ import annotations


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class GraphUnavailable(GraphError):
    """Graph could not be reached, or kept throttling or failing after our retries."""
