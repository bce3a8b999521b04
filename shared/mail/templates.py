"""Rendering e-mails (text and HTML, English and French) from Jinja2 templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

SUBJECTS = {
    "invitation": {"en": "{inviter} invited you to Zoho CRM", "fr": "{inviter} vous invite à rejoindre Zoho CRM"},
    "join_request": {
        "en": "{requester} asks to join your Zoho CRM account",
        "fr": "{requester} demande à rejoindre votre compte Zoho CRM",
    },
    "sync_paused": {
        "en": "Your Zoho CRM sync with Outlook is paused",
        "fr": "Votre synchronisation Zoho CRM avec Outlook est en pause",
    },
    "join_approved": {
        "en": "You have been added to Zoho CRM ({org})",
        "fr": "Vous avez été ajouté à Zoho CRM ({org})",
    },
}


def render_mail(kind: str, lang: str, **context: Any) -> tuple[str, str, str]:
    """(subject, html, text) of one e-mail."""
    lang = lang if lang in ("en", "fr") else "en"
    subject = SUBJECTS[kind][lang].format(**{k: v for k, v in context.items() if isinstance(v, str)})
    html = _ENV.get_template(f"{kind}.html").render(lang=lang, **context)
    text = _ENV.get_template(f"{kind}.txt").render(lang=lang, **context)
    return subject, html, text
