"""The outbound ``requests.Session``: explicit CA trust, no proxy or CA bundle taken from the
environment (``REQUESTS_CA_BUNDLE`` would silently override our ``verify``)."""

from __future__ import annotations

import requests

from shared.config import Settings

USER_AGENT = "crm-office365/1.0"


def outbound_session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(settings.outbound_ca_bundle) if settings.outbound_ca_bundle else True
    session.headers["User-Agent"] = USER_AGENT
    return session
