"""CSRF protection for every form: the session's token in a hidden field, compared in
constant time, and a same-origin check on the Origin header when the browser sends one."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from shared.http_messages import WebRequest


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def form_is_genuine(request: WebRequest, session_token: str, public_base_url: str) -> bool:
    """True when the POST carries this session's token and, if it says where it came from,
    came from our own origin."""
    origin = request.headers.get("origin")
    allowed = {_origin(public_base_url), _origin(request.url)}
    if origin and origin.lower() not in allowed:
        return False
    sent = request.form().get("csrf_token", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), session_token.encode())
