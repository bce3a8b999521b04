"""Entra ID v2.0 endpoints: discovery, JWKS, authorize (sign-in and consent pages), token, admin consent."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, redirect, request

from ..runtime import emulator
from ..store import now_utc
from . import pages
from .tokens import (
    ACCESS_TOKEN_LIFETIME,
    GRAPH_RESOURCE,
    TokenError,
    client_info,
    issue_access_token,
    issue_id_token,
    split_scopes,
)

blueprint = Blueprint("identity", __name__)
SESSION_COOKIE = "ESTSAUTHPERSISTENT"
CODE_LIFETIME = 600
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
MULTI_TENANT_SEGMENTS = {"common", "organizations"}


# ---- helpers -----------------------------------------------------------------------
def _base() -> str:
    return request.host_url.rstrip("/")


def _issuer(tenant_id: str) -> str:
    return f"{_base()}/{tenant_id}/v2.0"


def _resolve_segment(segment: str):
    """(tenant or None for common/organizations, error message or None)."""
    if segment in MULTI_TENANT_SEGMENTS:
        return None, None
    tenant = emulator().store.resolve_tenant(segment)
    if tenant is None:
        return None, (f"AADSTS90002: Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
                      "signing into the correct cloud.")
    return tenant, None


def redirect_uri_matches(registered: list[str], candidate: str) -> bool:
    """Exact match, except that Entra ignores the port of http loopback redirect URIs (reply-url: localhost exceptions)."""
    if candidate in registered:
        return True
    c = urlsplit(candidate)
    if c.scheme != "http" or c.hostname not in LOOPBACK_HOSTS:
        return False
    for uri in registered:
        r = urlsplit(uri)
        if r.scheme == "http" and r.hostname == c.hostname and (r.path or "/") == (c.path or "/") and r.query == c.query:
            return True
    return False


def _token_error(status: int, error: str, description: str) -> Response:
    code = int(description.split(":", 1)[0].replace("AADSTS", "") or 0) if description.startswith("AADSTS") else 0
    trace = str(uuid.uuid4())
    body = {"error": error, "error_description": f"{description} Trace ID: {trace} Correlation ID: {uuid.uuid4()} Timestamp: "
            f"{now_utc():%Y-%m-%d %H:%M:%SZ}", "error_codes": [code], "timestamp": f"{now_utc():%Y-%m-%d %H:%M:%SZ}",
            "trace_id": trace, "correlation_id": str(uuid.uuid4()), "error_uri": f"{_base()}/error?code={code}"}
    response = jsonify(body)
    response.status_code = status
    return response


def _error_page(code: str, description: str, status: int = 400) -> Response:
    return Response(pages.error(code, description), status=status, mimetype="text/html")


def _redirect_to_client(redirect_uri: str, response_mode: str, fields: dict) -> Response:
    fields = {k: v for k, v in fields.items() if v is not None}
    if response_mode == "form_post":
        return Response(pages.form_post(redirect_uri, fields), mimetype="text/html")
    target = redirect_uri if urlsplit(redirect_uri).path else redirect_uri + "/"
    separator = "&" if "?" in target else "?"
    return redirect(f"{target}{separator}{urlencode(fields)}", code=302)


def _session_user(tenant) -> dict | None:
    store = emulator().store
    session = store.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return None
    user = store.users.get(session["userId"])
    if user is None or (tenant is not None and user["tenantId"] != tenant["id"]):
        return None
    return user


def _with_session(response: Response, user: dict) -> Response:
    sid = secrets.token_urlsafe(24)
    emulator().store.sessions[sid] = {"userId": user["id"]}
    response.set_cookie(SESSION_COOKIE, sid, secure=True, httponly=True, samesite="None", path="/")
    return response


def _check_password(email: str, password: str):
    store = emulator().store
    user = store.find_user(email.strip()) if email else None
    if user is None or not user.get("accountEnabled", True):
        return None, "This username may be incorrect. Make sure you typed it correctly. Otherwise, contact your admin."
    if password != user.get("password"):
        return None, "Your account or password is incorrect. If you don't remember your password, reset it now."
    return user, None


# ---- discovery and keys ------------------------------------------------------------
@blueprint.get("/<segment>/v2.0/.well-known/openid-configuration")
def openid_configuration(segment: str):
    tenant, problem = _resolve_segment(segment)
    if problem:
        return _token_error(400, "invalid_tenant", problem)
    issuer_tid = tenant["id"] if tenant else "{tenantid}"
    base = f"{_base()}/{segment}"
    return jsonify({
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{_base()}/{issuer_tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{_base()}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                             "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                             "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "NA" if tenant is None else "EU" if tenant.get("countryLetterCode") in ("FR", "DE") else "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
        "code_challenge_methods_supported": ["plain", "S256"],
    })


@blueprint.get("/discovery/v2.0/keys")
@blueprint.get("/<segment>/discovery/v2.0/keys")
def keys(segment: str | None = None):
    return jsonify(emulator().signing_key.jwks())


# ---- authorize ----------------------------------------------------------------------
@blueprint.route("/<segment>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(segment: str):
    params = request.values.to_dict()
    store = emulator().store
    tenant, problem = _resolve_segment(segment)
    if problem:
        return _error_page("invalid_tenant", problem)
    app = store.apps.get(params.get("client_id", ""))
    if app is None:
        return _error_page("unauthorized_client", f"AADSTS700016: Application with identifier '{params.get('client_id')}' was not "
                           "found in the directory. This can happen if the application has not been installed by the administrator "
                           "of the tenant or consented to by any user in the tenant.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri_matches(app["redirectUris"], redirect_uri):
        return _error_page("invalid_request", f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not "
                           f"match the redirect URIs configured for the application '{app['clientId']}'.")
    mode = params.get("response_mode") or "query"
    state = params.get("state")

    def fail(error: str, description: str):
        return _redirect_to_client(redirect_uri, mode, {"error": error, "error_description": description, "state": state})

    if mode not in ("query", "form_post", "fragment"):
        return fail("invalid_request", f"AADSTS900144: The request body must contain a valid 'response_mode'; '{mode}' is not supported.")
    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "AADSTS700054: response_type 'code' is the only one enabled for this application.")
    if not params.get("scope"):
        return fail("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'.")
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return fail("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required. This emulator requires "
                    "code_challenge with code_challenge_method=S256.")
    try:
        split_scopes(params["scope"])
    except TokenError as exc:
        return fail("invalid_scope", exc.message)
    flow_id = secrets.token_urlsafe(16)
    store.pending_authorizations[flow_id] = {"kind": "authorize", "segment": segment, "params": params, "created": time.time()}
    user = _session_user(tenant)
    if user is None or params.get("prompt") in ("login", "select_account"):
        return Response(pages.sign_in(f"/{segment}/login", flow_id, login_hint=params.get("login_hint", "")), mimetype="text/html")
    return _after_sign_in(flow_id, user)


@blueprint.post("/<segment>/login")
def sign_in_post(segment: str):
    store = emulator().store
    flow_id = request.form.get("flow", "")
    flow = store.pending_authorizations.get(flow_id)
    if flow is None:
        return _error_page("invalid_request", "AADSTS90014: The sign-in session has expired. Start again from the application.")
    user, problem = _check_password(request.form.get("email", ""), request.form.get("password", ""))
    tenant, _ = _resolve_segment(flow["segment"])
    if user is not None and tenant is not None and user["tenantId"] != tenant["id"]:
        user, problem = None, (f"AADSTS50020: User account '{request.form.get('email')}' from identity provider does not exist "
                               f"in tenant '{tenant['displayName']}' and cannot access the application in that tenant.")
    if user is None:
        return Response(pages.sign_in(f"/{segment}/login", flow_id, error=problem, login_hint=request.form.get("email", "")),
                        status=200, mimetype="text/html")
    return _with_session(_after_sign_in(flow_id, user), user)


def _after_sign_in(flow_id: str, user: dict) -> Response:
    store = emulator().store
    flow = store.pending_authorizations[flow_id]
    flow["userId"] = user["id"]
    params = flow["params"]
    app = store.apps[params["client_id"]]
    if flow["kind"] == "adminconsent":
        if not store.is_consent_admin(user):
            store.pending_authorizations.pop(flow_id, None)
            # [U] Entra shows "Need admin approval"; the emulator returns the refusal to the app so it can explain.
            return _redirect_to_client(params["redirect_uri"], "query", {
                "error": "access_denied",
                "error_description": "AADSTS90094: The grant requires admin permission. Only an administrator of the tenant "
                                     "can grant consent to this application on behalf of the organization.",
                "state": params.get("state"), "tenant": user["tenantId"]})
        permissions = [f"{p} (application)" for p in app["requiredApplicationPermissions"]] + \
                      [f"{p} (delegated)" for p in app["requiredDelegatedScopes"]]
        return Response(pages.consent(f"/{flow['segment']}/consent", flow_id, app["displayName"], user["userPrincipalName"],
                                      permissions, for_organization=True), mimetype="text/html")
    _, perms, oidc = split_scopes(params["scope"])
    wanted = set(perms) | set(oidc)
    missing = wanted - store.consented_scopes(user["tenantId"], app["clientId"], user["id"]) - {".default"}
    if ".default" in perms:
        missing |= set(app["requiredDelegatedScopes"]) - store.consented_scopes(user["tenantId"], app["clientId"], user["id"])
    if missing or params.get("prompt") == "consent":
        return Response(pages.consent(f"/{flow['segment']}/consent", flow_id, app["displayName"], user["userPrincipalName"],
                                      sorted(wanted), for_organization=False), mimetype="text/html")
    return _issue_code(flow_id, user)


@blueprint.post("/<segment>/consent")
def consent_post(segment: str):
    store = emulator().store
    flow = store.pending_authorizations.get(request.form.get("flow", ""))
    if flow is None or "userId" not in flow:
        return _error_page("invalid_request", "AADSTS90014: The sign-in session has expired. Start again from the application.")
    flow_id = request.form["flow"]
    user = store.users[flow["userId"]]
    params = flow["params"]
    app = store.apps[params["client_id"]]
    if request.form.get("decision") != "accept":
        store.pending_authorizations.pop(flow_id, None)
        if flow["kind"] == "adminconsent":
            return _redirect_to_client(params["redirect_uri"], "query", {
                "error": "consent_required",
                "error_description": "AADSTS65004: The resource owner or authorization server denied the request.",
                "admin_consent": "True", "tenant": user["tenantId"], "state": params.get("state")})
        return _redirect_to_client(params["redirect_uri"], params.get("response_mode") or "query", {
            "error": "access_denied", "error_description": "AADSTS65004: User declined to consent to access the app.",
            "state": params.get("state")})
    if flow["kind"] == "adminconsent":
        store.grant_consent(user["tenantId"], app["clientId"], "admin", app["requiredDelegatedScopes"],
                            app_roles=app["requiredApplicationPermissions"])
        store.pending_authorizations.pop(flow_id, None)
        granted = " ".join(f"{GRAPH_RESOURCE}/{p}" for p in app["requiredApplicationPermissions"])
        return _redirect_to_client(params["redirect_uri"], "query", {
            "admin_consent": "True", "tenant": user["tenantId"], "scope": granted, "state": params.get("state")})
    _, perms, oidc = split_scopes(params["scope"])
    scopes = [p for p in perms if p != ".default"] + oidc + (app["requiredDelegatedScopes"] if ".default" in perms else [])
    store.grant_consent(user["tenantId"], app["clientId"], "user", scopes, user_id=user["id"])
    return _issue_code(flow_id, user)


def _issue_code(flow_id: str, user: dict) -> Response:
    store = emulator().store
    flow = store.pending_authorizations.pop(flow_id)
    params = flow["params"]
    code = "1.A" + secrets.token_urlsafe(48)
    store.auth_codes[code] = {
        "clientId": params["client_id"], "redirectUri": params["redirect_uri"], "scope": params["scope"],
        "userId": user["id"], "tenantId": user["tenantId"], "nonce": params.get("nonce"), "segment": flow["segment"],
        "codeChallenge": params.get("code_challenge"), "expires": time.time() + CODE_LIFETIME,
    }
    return _redirect_to_client(params["redirect_uri"], params.get("response_mode") or "query", {
        "code": code, "client_info": client_info(user) if params.get("client_info") == "1" else None,
        "state": params.get("state"), "session_state": str(uuid.uuid4())})


# ---- admin consent ------------------------------------------------------------------
@blueprint.get("/<segment>/v2.0/adminconsent")
@blueprint.get("/<segment>/adminconsent")
def admin_consent(segment: str):
    store = emulator().store
    params = request.args.to_dict()
    tenant, problem = _resolve_segment(segment)
    if problem:
        return _error_page("invalid_tenant", problem)
    app = store.apps.get(params.get("client_id", ""))
    if app is None:
        return _error_page("unauthorized_client", f"AADSTS700016: Application with identifier '{params.get('client_id')}' was not found.")
    redirect_uri = params.get("redirect_uri") or (app["redirectUris"][0] if app["redirectUris"] else "")
    if not redirect_uri_matches(app["redirectUris"], redirect_uri):
        return _error_page("invalid_request", f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not "
                           f"match the redirect URIs configured for the application '{app['clientId']}'.")
    params["redirect_uri"] = redirect_uri
    if "/v2.0/" in request.path:
        scopes = (params.get("scope") or "").split()
        if not scopes or not all(s.endswith("/.default") for s in scopes if s not in ("openid", "profile", "offline_access", "email")):
            return _redirect_to_client(redirect_uri, "query", {
                "error": "invalid_request", "error_description": "AADSTS70011: The provided value for the input parameter 'scope' "
                "is not valid. Application permissions need the /.default scope.", "state": params.get("state")})
    flow_id = secrets.token_urlsafe(16)
    store.pending_authorizations[flow_id] = {"kind": "adminconsent", "segment": segment, "params": params, "created": time.time()}
    user = _session_user(tenant)
    if user is None or params.get("prompt") == "login":
        return Response(pages.sign_in(f"/{segment}/login", flow_id, purpose=f"Sign in as an administrator to grant "
                                      f"{app['displayName']} access to your organization."), mimetype="text/html")
    return _after_sign_in(flow_id, user)


@blueprint.get("/<segment>/oauth2/v2.0/logout")
def logout(segment: str):
    emulator().store.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    target = request.args.get("post_logout_redirect_uri")
    response = redirect(target) if target else Response(pages.error("signed_out", "You signed out of your account."), mimetype="text/html")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- token --------------------------------------------------------------------------
def _client_credentials_from_request() -> tuple[str | None, str | None]:
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        return auth.username, auth.password
    return request.form.get("client_id"), request.form.get("client_secret")


@blueprint.post("/<segment>/oauth2/v2.0/token")
def token(segment: str):
    store = emulator().store
    form = request.form
    tenant, problem = _resolve_segment(segment)
    if problem:
        return _token_error(400, "invalid_request", problem)
    client_id, secret = _client_credentials_from_request()
    app = store.apps.get(client_id or "")
    if app is None:
        return _token_error(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{client_id}' was not found in "
                            "the directory. This can happen if the application has not been installed by the administrator of the "
                            "tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
    if not app["isPublicClient"] or secret is not None:
        if not secret:
            return _token_error(401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: "
                                "'client_assertion' or 'client_secret'.")
        if secret not in app["clientSecrets"]:
            return _token_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                                f"in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    grant = form.get("grant_type")
    try:
        if grant == "authorization_code":
            return _grant_authorization_code(tenant, app)
        if grant == "refresh_token":
            return _grant_refresh_token(tenant, app)
        if grant == "client_credentials":
            return _grant_client_credentials(segment, tenant, app)
        if grant == "password":
            return _grant_password(tenant, app)
    except TokenError as exc:
        return _token_error(400, "invalid_scope" if "AADSTS500011" in exc.message or "AADSTS1002012" in exc.message
                            else "invalid_grant", exc.message)
    return _token_error(400, "unsupported_grant_type", f"AADSTS70003: The app requested an unsupported grant type '{grant}'.")


def _user_tokens(app: dict, user: dict, scope: str, nonce: str | None, with_refresh: bool = True) -> Response:
    store = emulator().store
    key = emulator().signing_key
    resource, perms, oidc = split_scopes(scope)
    consented = store.consented_scopes(user["tenantId"], app["clientId"], user["id"])
    if ".default" in perms:
        perms = [p for p in perms if p != ".default"] + [s for s in app["requiredDelegatedScopes"] if s not in {"openid", "profile", "email", "offline_access"}]
    missing = (set(perms) | set(oidc)) - consented
    if missing:
        raise TokenError(f"AADSTS65001: The user or administrator has not consented to use the application with ID "
                         f"'{app['clientId']}' named '{app['displayName']}'. Send an interactive authorization request for this user and resource.")
    graph_perms = sorted(set(perms) | {s for s in consented if s[:1].isupper()}) or ["User.Read"]
    audience = resource or GRAPH_RESOURCE
    body = {
        "token_type": "Bearer",
        "scope": " ".join([*[f"{GRAPH_RESOURCE}/{p}" for p in graph_perms], *[s for s in oidc if s != "offline_access"]]),
        "expires_in": ACCESS_TOKEN_LIFETIME, "ext_expires_in": ACCESS_TOKEN_LIFETIME,
        "access_token": issue_access_token(key, store, user["tenantId"], app, audience, user=user, scopes=graph_perms),
    }
    if "offline_access" in oidc and with_refresh:
        refresh = "1.A" + secrets.token_urlsafe(64)
        store.refresh_tokens[refresh] = {"clientId": app["clientId"], "userId": user["id"], "scope": scope}
        body["refresh_token"] = refresh
    if "openid" in oidc:
        body["id_token"] = issue_id_token(key, _issuer(user["tenantId"]), user["tenantId"], app, user, nonce,
                                          mail_domain_verified=store.mail_domain_verified(user))
    if request.form.get("client_info") == "1":
        body["client_info"] = client_info(user)
    return jsonify(body)


def _grant_authorization_code(tenant, app: dict) -> Response:
    store = emulator().store
    form = request.form
    record = store.auth_codes.pop(form.get("code", ""), None)
    if record is None:
        raise TokenError("AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
    if record["expires"] < time.time():
        raise TokenError("AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
    if record["clientId"] != app["clientId"]:
        raise TokenError("AADSTS70000: The provided authorization code was issued to a different client.")
    if tenant is not None and tenant["id"] != record["tenantId"]:
        raise TokenError("AADSTS50148: The authorization code was issued for a different tenant.")
    if form.get("redirect_uri") != record["redirectUri"]:
        raise TokenError(f"AADSTS50011: The redirect URI '{form.get('redirect_uri')}' specified in the request does not match the "
                         "redirect URI used to obtain the authorization code.")
    verifier = form.get("code_verifier")
    if not verifier:
        raise TokenError("AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    if challenge != record["codeChallenge"]:
        raise TokenError("AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
    user = store.users[record["userId"]]
    scope = form.get("scope") or record["scope"]
    return _user_tokens(app, user, scope, record["nonce"])


def _grant_refresh_token(tenant, app: dict) -> Response:
    store = emulator().store
    form = request.form
    record = store.refresh_tokens.pop(form.get("refresh_token", ""), None)
    if record is None or record["clientId"] != app["clientId"]:
        raise TokenError("AADSTS9002313: Invalid request. Request is malformed or invalid. The refresh token is invalid.")
    user = store.users.get(record["userId"])
    if user is None or (tenant is not None and tenant["id"] != user["tenantId"]):
        raise TokenError("AADSTS700082: The refresh token has expired due to inactivity.")
    return _user_tokens(app, user, form.get("scope") or record["scope"], None)


def _grant_password(tenant, app: dict) -> Response:
    user, problem = _check_password(request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        raise TokenError("AADSTS50126: Error validating credentials due to invalid username or password.")
    if tenant is not None and tenant["id"] != user["tenantId"]:
        raise TokenError(f"AADSTS50034: The user account {request.form.get('username')} does not exist in the {tenant['id']} directory.")
    return _user_tokens(app, user, request.form.get("scope") or "openid profile offline_access", None)


def _grant_client_credentials(segment: str, tenant, app: dict) -> Response:
    store = emulator().store
    if tenant is None:
        raise TokenError(f"AADSTS90002: Tenant '{segment}' cannot be used for the client credentials flow. Use a tenant-specific endpoint.")
    scope = request.form.get("scope", "")
    if len(scope.split()) != 1 or not scope.endswith("/.default"):
        raise TokenError(f"AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a "
                         "scope value with /.default suffixed to the resource identifier (application ID URI).")
    resource, _, _ = split_scopes(scope)
    # Right after consent Entra's token endpoint may not see the new service principal yet
    # (directory replication): the same answer as before any consent, until it has replicated.
    age = store.service_principal_age_seconds(tenant["id"], app["clientId"])
    replicating = age is not None and age < float(emulator().throttle.settings.consent_replication_seconds)
    if age is None or replicating:
        return _token_error(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{app['clientId']}' was not found "
                            f"in the directory '{tenant['displayName']}'. This can happen if the application has not been installed by "
                            "the administrator of the tenant or consented to by any user in the tenant. You might have sent your "
                            "authentication request to the wrong tenant.")
    admin = store.tenant_admin_consent(tenant["id"], app["clientId"])
    roles = list(admin.get("appRoles", [])) if admin else []
    return jsonify({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_LIFETIME, "ext_expires_in": ACCESS_TOKEN_LIFETIME,
                    "access_token": issue_access_token(emulator().signing_key, store, tenant["id"], app, resource, roles=roles)})
