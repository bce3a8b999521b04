"""The objects one running emulator shares: state, limits, callback delivery, where it listens."""

from __future__ import annotations

from typing import Any

from flask import current_app

from . import datacentres
from .callbacks import Notifier
from .limits import Limits
from .store import Clock, Store


class Crm:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = Store(self.clock)
        self.limits = Limits(self.clock)
        self.base_url = "http://127.0.0.1"
        self.notifier = Notifier(self.store, lambda dc: datacentres.api_url(self.base_url, dc),
                                 dropped=self.limits.drop_callback)
        self.seed_data: dict[str, Any] | None = None
        # The Setup menu's entries that lead out of the CRM (an installed extension's pages):
        # [{"section", "label", "url"}], configured by whoever runs the emulator; kept across resets.
        self.setup_menu: list[dict[str, str]] = []


def current() -> Crm:
    return current_app.extensions["crm"]
