"""The emulators' HTTP server: cheroot, a threaded WSGI server that keeps connections alive.

Werkzeug's development server answers every request with ``Connection: close``, so each call
to an emulator was a new TCP connection (and a TLS handshake for the M365 emulator), which
Microsoft Graph and Zoho never make a client pay: under the benchmarks' load (100 mailboxes at
once on 2 cores) the handshakes on both sides took more CPU than the requests themselves,
and one member's webhook-driven change waited seconds for its connections (issue 21's
propagation-under-load). Cheroot keeps HTTP/1.1 connections open (up to ``KEEP_ALIVE_CONNECTIONS``),
and idle ones hold no worker thread (its connection manager waits on them with a selector).
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

# Requests served at once; more wait in the listen queue. The product sends at most 4 per
# mailbox, and the benchmarks run 100 mailboxes' syncs at once.
WORKER_THREADS = 64
# Idle connections kept open. Cheroot's default keeps 10 and answers every other request with
# ``Connection: close``: with 100 mailboxes syncing at once, nearly every ``$batch`` paid a new
# TCP connection and TLS handshake on both sides (a CPU profile of the host during bench
# many-members: 28 % of its busy samples in ``HTTPSConnection.connect``, all from Graph
# batches), which Graph never makes a client pay.
KEEP_ALIVE_CONNECTIONS = 1024


class Serving:
    """A WSGI app served on loopback in a background thread; ``stop`` ends it."""

    def __init__(self, host: str, port: int, app: Any, *, name: str, tls: tuple[str, str, ssl.SSLContext] | None = None) -> None:
        """``tls``: (certificate file, key file, the server context to use)."""
        self._server = wsgi.Server((host, port), app, numthreads=WORKER_THREADS, request_queue_size=512, timeout=30,
                                   shutdown_timeout=1, server_name=name)
        if tls is not None:
            adapter = BuiltinSSLAdapter(tls[0], tls[1])
            adapter.context = tls[2]
            self._server.ssl_adapter = adapter
        self._server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
        self._server.prepare()  # binds now: the port is known when this returns
        self.host = host
        self.port = int(self._server.bind_addr[1])
        self._thread = threading.Thread(target=self._server.serve, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=5)
