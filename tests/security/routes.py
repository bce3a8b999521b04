"""The app's HTTP routes, read the way the host reads them (``get_functions()`` may be called
once per app, so the app is loaded here once, on its own)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from local.indexer import index_functions, load_app

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HttpRoute:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str


@functools.cache
def http_routes() -> tuple[HttpRoute, ...]:
    _, app = load_app(ROOT / "function_app.py")
    routes = []
    for spec in index_functions(app):
        if spec.trigger_type != "httpTrigger":
            continue
        trigger = spec.trigger
        routes.append(HttpRoute(spec.name, trigger.get("route") or spec.name,
                                tuple(m.upper() for m in trigger.get("methods") or ()),
                                str(trigger.get("authLevel", "function")).lower()))
    return tuple(sorted(routes, key=lambda r: (r.route, r.methods)))


def concrete(route: str, token: str = "tok") -> str:
    """A path for a route template: each parameter filled with a plausible value."""
    values = {"{token}": token, "{kind}": "calendar", "{action}": "enable", "{name}": "app.css", "{queue}": "mail-outbox"}
    for name, value in values.items():
        route = route.replace(name, value)
    return f"/api/{route}"
