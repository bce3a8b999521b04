"""Rendering pages: Jinja2 with autoescaping, the member's language, security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.http_messages import WebRequest, WebResponse
from shared.web.i18n import choose_language, format_number, translate

_HERE = Path(__file__).parent
_ENV = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
STATIC_DIR = _HERE / "static"


# What the other language's link keeps of the address: where the person is in a list or a
# search, never anything else (an OAuth callback's code and state are not links to share).
KEPT_ON_LANGUAGE_SWITCH = ("page", "invitations_page", "requests_page", "q", "why", "kind")


def _kept(request: WebRequest) -> dict[str, str]:
    return {name: request.query[name][:200] for name in KEPT_ON_LANGUAGE_SWITCH if request.query.get(name)}


def language_of(request: WebRequest) -> str:
    return choose_language(request.query.get("lang"), request.cookies.get("lang"), request.headers.get("accept-language"))


def render(request: WebRequest, template: str, *, status: int = 200, **context: Any) -> WebResponse:
    lang = language_of(request)
    other = "fr" if lang == "en" else "en"
    html = _ENV.get_template(template).render(
        lang=lang,
        t=lambda key, **values: translate(lang, key, **values),
        number=lambda value: format_number(lang, value),
        switch_url=f"{request.path}?{urlencode({**_kept(request), 'lang': other})}",
        current_path=request.path,
        **context,
    )
    response = WebResponse(status=status, body=html)
    if request.query.get("lang") in ("en", "fr"):
        from shared.http_messages import Cookie

        response.cookies.append(Cookie("lang", lang, max_age=365 * 24 * 3600, http_only=False))
    return response


def message(request: WebRequest, title_key: str, body_key: str, *, status: int, **values: str) -> WebResponse:
    """A page that explains what happened (errors and refusals), in the member's language."""
    return render(request, "message.html", status=status, title_key=title_key, body_key=body_key, values=values)
