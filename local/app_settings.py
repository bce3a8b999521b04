"""App settings the way Core Tools reads them: local.settings.json ``Values`` become
environment variables (without overriding what the environment already says), and
``%Name%`` in binding properties resolves from them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

_PERCENT = re.compile(r"%([^%]+)%")


def load_local_settings(path: Path) -> dict[str, str]:
    """Put ``Values`` of local.settings.json into os.environ (setdefault); return them."""
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    for name, value in values.items():
        os.environ.setdefault(name, str(value))
    return {name: str(value) for name, value in values.items()}


def resolve(value: str) -> str:
    """Replace ``%Setting%`` with the setting's value, as the host does for bindings."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise KeyError(f"binding refers to app setting %{name}%, which is not set")
        return os.environ[name]

    return _PERCENT.sub(lookup, value)


def storage_connection(connection: str | None) -> str:
    """Resolve a binding's ``connection`` the way the host does: setting X, then AzureWebJobsX;
    empty means AzureWebJobsStorage. Returns a connection string (identity form unsupported)."""
    name = connection or "AzureWebJobsStorage"
    for candidate in (name, f"AzureWebJobs{name}"):
        if os.environ.get(candidate):
            return os.environ[candidate]
    raise KeyError(f"storage connection setting {name!r} is not set")


def is_disabled(function_name: str) -> bool:
    """``AzureWebJobs.<Name>.Disabled=true`` turns a function off."""
    value = os.environ.get(f"AzureWebJobs.{function_name}.Disabled", "")
    return value.strip().lower() in ("true", "1")
