"""Every page speaks both languages (issue 19): the same keys in English and French, with the
same placeholders, and every key a template names exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

from shared.web.i18n import TEXTS

TEMPLATES = Path(__file__).resolve().parents[2] / "shared" / "web" / "templates"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_english_and_french_have_the_same_keys_and_placeholders() -> None:
    assert set(TEXTS["en"]) == set(TEXTS["fr"]), set(TEXTS["en"]) ^ set(TEXTS["fr"])
    for key, english in TEXTS["en"].items():
        assert placeholders(english) == placeholders(TEXTS["fr"][key]), key


def test_every_key_a_template_names_exists() -> None:
    named = {key for page in TEMPLATES.glob("*.html") for key in re.findall(r"""\bt\(\s*["']([a-z0-9_.\- ]+)["']\s*[,)]""", page.read_text())}
    assert named, "no t('...') call found: the pattern no longer matches the templates"
    assert named - set(TEXTS["en"]) == set()
