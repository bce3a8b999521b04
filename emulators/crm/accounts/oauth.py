"""Zoho Accounts OAuth 2.0: the authorization request, consent, token endpoint and revocation."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, jsonify, redirect, request

from .. import datacentres
from ..api.common import bind_dc
from ..runtime import current
from ..store import token_hash
from . import tokens
from .pages import page, session_account

bp = Blueprint("accounts_oauth", __name__)
bp.url_value_preprocessor(bind_dc)

AUTH_PARAMS = ("client_id", "response_type", "redirect_uri", "scope", "access_type", "prompt", "state")


def _base() -> str:
    return request.host_url.rstrip("/")


def _error_page(title: str, detail: str) -> Response:
    return page(title, f"<h1>{escape(title)}</h1><p class=error role=alert>{escape(detail)}</p>", status=400)


def _check_request(args: Any) -> tuple[dict[str, Any] | None, Response | None]:
    store = current().store
    client = store.clients.get(args.get("client_id", ""))
    if client is None:
        return None, _error_page("Invalid Client", "The client_id is not registered (invalid_client).")
    if args.get("redirect_uri") not in client["redirect_uris"]:
        return None, _error_page("Invalid Redirect Uri", "The redirect_uri does not match the registered one.")
    if args.get("response_type") != "code":
        return None, _error_page("Invalid Response Type", "response_type must be code.")
    scopes = [s.strip() for s in (args.get("scope") or "").split(",") if s.strip()]
    if not scopes or not all(s.split(".")[0] in ("ZohoCRM", "ZohoSearch", "aaaserver", "AaaServer") for s in scopes):
        return None, _error_page("Invalid OAuth Scope", "The scope parameter is missing or invalid.")
    return client, None


@bp.get("/oauth/v2/auth")
def authorize() -> Response:
    client, problem = _check_request(request.args)
    if problem:
        return problem
    account = session_account()
    if account is None:
        return redirect(f"/{g.dc}/accounts/signin?" + urlencode({"next": request.full_path}), 302)
    scopes = [s.strip() for s in request.args["scope"].split(",") if s.strip()]
    store = current().store
    with store.lock:
        consented = (client["client_id"], account["zuid"]) in store.consents
    if consented and request.args.get("prompt") != "consent":
        return _grant(client, account, scopes, request.args)
    hidden = "".join(f"<input type=hidden name={n} value='{escape(request.args.get(n, ''), quote=True)}'>"
                     for n in AUTH_PARAMS)
    items = "".join(f"<li>{escape(s)}</li>" for s in scopes)
    body = (f"<h1>{escape(client['name'])} would like to access your Zoho CRM data</h1>"
            f"<p>Signed in as {escape(account['email'])}</p><ul>{items}</ul>"
            f"<form method=post action='/{g.dc}/accounts/oauth/v2/auth/consent'>{hidden}"
            "<button type=submit name=decision value=accept>Accept</button> "
            "<button type=submit name=decision value=reject>Reject</button></form>")
    return page("Zoho Accounts - Consent", body)


@bp.post("/oauth/v2/auth/consent")
def consent() -> Response:
    client, problem = _check_request(request.form)
    if problem:
        return problem
    account = session_account()
    if account is None:
        return _error_page("Session expired", "Sign in again.")
    if request.form.get("decision") != "accept":
        query = {"error": "access_denied"}
        if request.form.get("state"):
            query["state"] = request.form["state"]
        return redirect(_with_query(request.form["redirect_uri"], query), 302)
    scopes = [s.strip() for s in request.form["scope"].split(",") if s.strip()]
    return _grant(client, account, scopes, request.form)


def _grant(client: dict[str, Any], account: dict[str, Any], scopes: list[str], args: Any) -> Response:
    store = current().store
    with store.lock:
        key = (client["client_id"], account["zuid"])
        # access_type=offline yields a refresh token on the first consent, or again with prompt=consent.
        offline = args.get("access_type") == "offline" and (key not in store.consents or args.get("prompt") == "consent")
        store.consents.add(key)
        code = tokens.issue_code(store, client["client_id"], account["zuid"], account["dc"], scopes,
                                 args["redirect_uri"], offline)
    query = {}
    if args.get("state"):
        query["state"] = args["state"]
    query.update({"code": code, "location": account["dc"],
                  "accounts-server": datacentres.accounts_url(_base(), account["dc"])})
    return redirect(_with_query(args["redirect_uri"], query), 302)


def _with_query(uri: str, query: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}"


def _param(name: str) -> str:
    return request.form.get(name) or request.args.get(name) or ""


def _oauth_error(error: str, status: int = 200, **extra: str) -> tuple[Response, int]:
    # Zoho answers most token errors with HTTP 200 and an "error" key; clients must look for access_token.
    return jsonify({"error": error, **extra}), status


@bp.post("/oauth/v2/token")
def token() -> Any:
    store = current().store
    grant_type = _param("grant_type")
    with store.lock:
        client = store.clients.get(_param("client_id"))
        if client is None or client["client_secret"] != _param("client_secret"):
            return _oauth_error("invalid_client")
        api_domain = datacentres.api_url(_base(), g.dc)
        if grant_type == "authorization_code":
            code = store.codes.get(token_hash(_param("code")))
            if (code is None or code["used"] or code["expires"] <= store.now() or code["dc"] != g.dc
                    or code["client_id"] != client["client_id"]):
                return _oauth_error("invalid_code")
            if code["redirect_uri"] != _param("redirect_uri"):
                return _oauth_error("invalid_redirect_uri")
            code["used"] = True
            refresh = (tokens.issue_refresh_token(store, client["client_id"], code["zuid"], g.dc, code["scopes"])
                       if code["offline"] else None)
            access = tokens.issue_access_token(store, client["client_id"], code["zuid"], g.dc, code["scopes"],
                                               token_hash(refresh) if refresh else None)
            return jsonify(tokens.token_response(api_domain, access, code["scopes"], refresh))
        if grant_type == "refresh_token":
            refresh = store.refresh_tokens.get(token_hash(_param("refresh_token")))
            if refresh is None or refresh["revoked"] or refresh["dc"] != g.dc or refresh["client_id"] != client["client_id"]:
                return _oauth_error("invalid_code")
            if not tokens.note_refresh_request(store, refresh):
                return _oauth_error("Access Denied", 400, error_description=(
                    "You have made too many requests continuously. Please try again after some time."))
            access = tokens.issue_access_token(store, client["client_id"], refresh["zuid"], g.dc, refresh["scopes"],
                                               refresh["hash"])
            return jsonify(tokens.token_response(api_domain, access, refresh["scopes"], None))
        return _oauth_error("unsupported_grant_type")


@bp.post("/oauth/v2/token/revoke")
def revoke() -> Any:
    store = current().store
    digest = token_hash(_param("token"))
    with store.lock:
        refresh = store.refresh_tokens.get(digest)
        if refresh is not None and not refresh["revoked"] and refresh["dc"] == g.dc:
            tokens.revoke_refresh(store, digest)
            return jsonify({"status": "success"})
        access = store.access_tokens.get(digest)
        if access is not None and access["dc"] == g.dc:
            del store.access_tokens[digest]
            return jsonify({"status": "success"})
    return jsonify({"status": "failure", "error": "invalid_token"}), 400


@bp.get("/oauth/serverinfo")
def serverinfo() -> Any:
    base = _base()
    return jsonify({"result": "success", "locations": {dc: datacentres.accounts_url(base, dc)
                                                       for dc in datacentres.DATA_CENTRES}})
