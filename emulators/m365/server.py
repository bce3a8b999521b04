"""The emulator's HTTPS server: identity, Graph and the control surface on one port."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from ..serving import Serving
from .certs import TlsMaterial, prepare_tls
from .errors import GraphError, current_request_id, error_response
from .graph.subscriptions import Notifier
from .graph.throttle import Throttle
from .identity.keys import SigningKey
from .runtime import Emulator
from .store import Store, load_seed


def create_app(store: Store, state_dir: Path) -> Flask:
    from . import control
    from .graph import batch, routes, subscriptions
    from .identity import routes as identity_routes

    app = Flask("m365-emulator")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    throttle = Throttle()
    app.extensions["m365"] = Emulator(store=store, signing_key=SigningKey(state_dir), throttle=throttle,
                                      notifier=Notifier(store, throttle))
    app.register_blueprint(batch.blueprint)
    app.register_blueprint(subscriptions.blueprint)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(control.blueprint)
    app.register_blueprint(identity_routes.blueprint)

    @app.before_request
    def count_http_request() -> None:
        # What a client pays for in round trips: one per HTTP request, a $batch once; its
        # items arrive here as inner requests marked by batch.py and are not counted again.
        if request.path.startswith("/v1.0") and not request.headers.get(batch.INNER_REQUEST_HEADER):
            throttle.count_http_request()

    @app.errorhandler(GraphError)
    def graph_error(error: GraphError):
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if request.path.startswith("/v1.0"):
            codes = {404: ("UnknownError" if request.method != "GET" else "BadRequest",
                           f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'."),
                     405: ("Request_BadRequest", "Specified HTTP method is not allowed for the request target.")}
            code, message = codes.get(error.code or 500, ("UnknownError", error.description or ""))
            status = 400 if error.code == 404 else error.code or 500
            return error_response(GraphError(status, code, message))
        return error

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unhandled error")
        return error_response(GraphError(500, "InternalServerError", f"{type(error).__name__}: {error}"))

    @app.after_request
    def graph_headers(response: Response) -> Response:
        request_id = current_request_id()
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = g.get("client_request_id") or request.headers.get("client-request-id") or request_id
        if request.path.startswith("/v1.0"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"local"}}'
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    return app


@dataclass
class RunningM365:
    base_url: str
    graph_url: str
    ca_cert_path: Path
    tls: TlsMaterial
    app: Flask
    store: Store
    _serving: Serving

    @property
    def leaf_spki_sha256(self) -> str:
        return self.tls.leaf_spki_sha256_b64

    def stop(self) -> None:
        self._serving.stop()
        self.app.extensions["m365"].notifier.stop()


def start(host: str = "127.0.0.1", port: int = 0, seed: dict | str | Path | None = None,
          state_dir: Path | str = ".local") -> RunningM365:
    """Start the emulator in a background thread; port 0 picks a free port."""
    state_dir = Path(state_dir)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns test output
    state_dir.mkdir(parents=True, exist_ok=True)
    tls = prepare_tls(state_dir)
    store = Store(load_seed(seed))
    app = create_app(store, state_dir)
    serving = Serving(host, port, app, name=f"m365-{uuid.uuid4().hex[:6]}",
                      tls=(str(tls.leaf_cert_path), str(tls.leaf_key_path), tls.server_context()))
    base_url = f"https://{host}:{serving.port}"
    return RunningM365(base_url=base_url, graph_url=f"{base_url}/v1.0", ca_cert_path=tls.ca_cert_path, tls=tls, app=app,
                       store=store, _serving=serving)
