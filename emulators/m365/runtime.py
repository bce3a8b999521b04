"""The running emulator's parts, reachable from any request handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from .graph.subscriptions import Notifier
    from .graph.throttle import Throttle
    from .identity.keys import SigningKey
    from .store import Store


@dataclass
class Emulator:
    store: Store
    signing_key: SigningKey
    throttle: Throttle
    notifier: Notifier


def emulator() -> Emulator:
    return current_app.extensions["m365"]
