"""The emulator's Flask app and a threaded Werkzeug server to run it on loopback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..serving import Serving
from . import control, datacentres, provisioning, seeding
from .accounts import oauth, pages
from .api import fields as api_fields
from .api import records as api_records
from .api import users as api_users
from .api import watch as api_watch
from .errors import CrmError
from .runtime import Crm

DEMO_SEED = Path(__file__).parent / "seed" / "demo.json"


def create_app(crm: Crm) -> Flask:
    app = Flask(__name__)
    app.extensions["crm"] = crm
    app.url_map.strict_slashes = False
    for blueprint in (api_fields.bp, api_records.bp, api_users.bp, api_watch.bp):
        app.register_blueprint(blueprint, url_prefix="/<dc>/api/crm/v8")
    app.register_blueprint(oauth.bp, url_prefix="/<dc>/accounts")
    app.register_blueprint(pages.accounts_pages, url_prefix="/<dc>/accounts")
    app.register_blueprint(pages.crm_web, url_prefix="/<dc>/crm")
    app.register_blueprint(provisioning.bp, url_prefix="/provisioning/v1")
    app.register_blueprint(control.bp, url_prefix="/__emulator")

    @app.errorhandler(CrmError)
    def crm_error(exc: CrmError) -> Any:
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if "/api/" not in request.path:
            return exc
        if exc.code == 405:
            return jsonify(CrmError(400, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one").body()), 400
        if exc.code == 404:
            return jsonify(CrmError(404, "INVALID_URL_PATTERN",
                                    "Please check if the URL trying to access is a correct one").body()), 404
        return exc

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Any:
        app.logger.exception("unhandled error", exc_info=exc)
        return jsonify(CrmError(500, "INTERNAL_ERROR", "Internal Server Error").body()), 500

    return app


class RunningCrm:
    """A started emulator: where it listens, its state, and how to stop it."""

    def __init__(self, crm: Crm, server: Serving) -> None:
        self.crm = crm
        self._serving = server
        self.host = server.host
        self.port = server.port
        self.base_url = f"http://{server.host}:{server.port}"

    def accounts_url(self, dc: str = "us") -> str:
        return datacentres.accounts_url(self.base_url, dc)

    def api_url(self, dc: str = "us") -> str:
        return datacentres.api_url(self.base_url, dc)

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/__emulator"

    @property
    def provisioning_url(self) -> str:
        return f"{self.base_url}/provisioning/v1"

    def stop(self) -> None:
        self._serving.stop()
        self.crm.notifier.stop()


def start(host: str = "127.0.0.1", port: int = 0, seed: dict[str, Any] | str | Path | None = None) -> RunningCrm:
    # One line per request drowns test output; errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    crm = Crm()
    crm.seed_data = seeding.read(seed)
    if crm.seed_data is not None:
        seeding.load(crm.store, crm.seed_data)
    app = create_app(crm)
    server = Serving(host, port, app, name="crm-emulator")
    crm.base_url = f"http://{host}:{server.port}"
    crm.notifier.start()
    return RunningCrm(crm, server)
