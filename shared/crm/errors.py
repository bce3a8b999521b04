"""CRM errors, carrying the CRM's own code so callers can decide without parsing messages."""

from __future__ import annotations


class CrmError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class CrmUnavailable(CrmError):
    """The CRM could not be reached, or kept answering 429/5xx after our retries."""


class UntrustedCrmHost(CrmError):
    """An accounts server or API domain that is not one of the CRM's data centres."""
