"""Neutral request/response types between the triggers and the product's page flows."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class WebRequest:
    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str] = field(default_factory=dict)
    route: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:
            return {}
        return {name: morsel.value for name, morsel in jar.items()}

    def form(self) -> dict[str, str]:
        """The urlencoded form body (the only form encoding our pages send)."""
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return {}
        try:
            return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, max_num_fields=200))
        except (UnicodeDecodeError, ValueError):
            return {}

    def form_list(self, name: str) -> list[str]:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return []
        try:
            pairs = parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
        except (UnicodeDecodeError, ValueError):
            return []
        return [value for key, value in pairs if key == name]


@dataclass
class Cookie:
    name: str
    value: str
    max_age: int | None = None
    http_only: bool = True
    secure: bool = False
    same_site: str = "Lax"
    path: str = "/"

    def header(self) -> str:
        parts = [f"{self.name}={self.value}", f"Path={self.path}", f"SameSite={self.same_site}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


# Every page: no framing, no inline script, no referrer to other sites (link tokens), no caching.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self' https: http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # link tokens never leave our origin; Origin is still sent on our POSTs
    "Cache-Control": "no-store",
}


@dataclass
class WebResponse:
    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[Cookie] = field(default_factory=list)

    @classmethod
    def redirect(cls, location: str, *, status: int = 303) -> WebResponse:
        return cls(status=status, headers={"Location": location}, content_type="text/plain; charset=utf-8")

    @classmethod
    def json(cls, payload: Any, *, status: int = 200) -> WebResponse:
        import json

        return cls(status=status, body=json.dumps(payload), content_type="application/json")

    def all_headers(self) -> list[tuple[str, str]]:
        headers = {**SECURITY_HEADERS, **self.headers, "Content-Type": self.content_type}
        return list(headers.items()) + [("Set-Cookie", cookie.header()) for cookie in self.cookies]
