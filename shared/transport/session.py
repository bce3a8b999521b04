"""The outbound ``requests.Session``: explicit CA trust, no proxy or CA bundle taken from the
environment (``REQUESTS_CA_BUNDLE`` would silently override our ``verify``)."""

from __future__ import annotations

import requests
import requests.adapters

from shared.config import Settings

USER_AGENT = "crm-office365/1.0"
# Connections kept per host: one session serves every worker thread (up to 128, many sync steps
# against graph.microsoft.com at once); with requests' default of 10, the others' connections
# were dropped after each call ("Connection pool is full") and each new one paid a TLS handshake.
# 256: an instance running 100 initial syncs has up to 4 Graph requests in flight for each
# (bench propagation-under-load: with 64, its threads still spent their time in handshakes).
CONNECTIONS_PER_HOST = 256


def outbound_session(settings: Settings) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(settings.outbound_ca_bundle) if settings.outbound_ca_bundle else True
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=CONNECTIONS_PER_HOST)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
