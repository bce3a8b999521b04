"""The CRM's error envelope and the exceptions that carry it to the HTTP layer."""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    """A request-level CRM API error: ``{"code","details","message","status":"error"}``."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_item(self.code, self.message, self.details)


def error_item(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "details": details if details is not None else {}, "message": message, "status": "error"}


def invalid_token() -> CrmError:
    return CrmError(401, "INVALID_TOKEN", "invalid oauth token")


def scope_mismatch() -> CrmError:
    return CrmError(401, "OAUTH_SCOPE_MISMATCH", "Unauthorized")


def required_param(name: str) -> CrmError:
    return CrmError(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                    {"param_name": name})


def invalid_param(name: str, message: str = "the given parameter is invalid") -> CrmError:
    return CrmError(400, "INVALID_DATA", message, {"param_name": name})


def no_permission(permission: str) -> CrmError:
    return CrmError(403, "NO_PERMISSION", "permission denied", {"permissions": [permission]})
