"""Zoho's web pages: sign-in (Email, Password, Sign in), consent, single-use sign-in links, the CRM home.

A signed-in browser carries the ``ZCRM_SESSION`` cookie; the session names the Zoho account.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, make_response, redirect, request

from .. import datacentres, directory, records
from ..api.common import bind_dc
from ..runtime import current
from ..store import new_secret, token_hash

SESSION_COOKIE = "ZCRM_SESSION"
LINK_LIFETIME = 300

accounts_pages = Blueprint("accounts_pages", __name__)
accounts_pages.url_value_preprocessor(bind_dc)
crm_web = Blueprint("crm_web", __name__)
crm_web.url_value_preprocessor(bind_dc)

STYLE = """body{font-family:system-ui,sans-serif;background:#f4f6fa;margin:0}
main{max-width:460px;margin:60px auto;background:#fff;padding:32px;border-radius:8px;box-shadow:0 1px 4px #0002}
main.wide{max-width:900px}label{display:block;margin-top:14px;font-weight:600}
input{width:100%;padding:8px;margin-top:4px;box-sizing:border-box}button{margin-top:20px;padding:10px 18px}
.error{color:#b00020}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px;text-align:left}
header{background:#1c2b4a;color:#fff;padding:10px 20px}header a{color:#fff}
.setup{display:inline-block;margin-left:1em;position:relative}.setup summary{cursor:pointer}
.setup div{position:absolute;right:0;background:#fff;color:#1c2b4a;padding:8px 16px;border-radius:6px;box-shadow:0 2px 8px #0004;min-width:220px;z-index:1}
.setup h2{font-size:.8rem;text-transform:uppercase;color:#555;margin:8px 0 2px}.setup ul{margin:0;padding-left:0;list-style:none}
.setup div a{color:#0b5cad}"""


def page(title: str, body: str, wide: bool = False, status: int = 200) -> Response:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body if wide else ''}"
            f"{'' if wide else f'<main>{body}</main>'}</body></html>")
    return make_response(html, status, {"Content-Type": "text/html; charset=utf-8"})


def session_account() -> dict[str, Any] | None:
    store = current().store
    sid = request.cookies.get(SESSION_COOKIE)
    with store.lock:
        zuid = store.sessions.get(token_hash(sid)) if sid else None
        return store.accounts.get(zuid) if zuid else None


def start_session(response: Response, zuid: str) -> Response:
    store = current().store
    sid = new_secret(24)
    with store.lock:
        store.sessions[token_hash(sid)] = zuid
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", path="/")
    return response


def signin_page(next_url: str, error: str = "") -> Response:
    body = (f"<h1>Sign in to Zoho</h1><p>to access Zoho CRM</p>"
            f"{f'<p class=error role=alert>{escape(error)}</p>' if error else ''}"
            f"<form method=post action='/{g.dc}/accounts/signin'>"
            f"<input type=hidden name=next value='{escape(next_url, quote=True)}'>"
            "<label for=email>Email</label><input id=email name=email type=email autocomplete=username required>"
            "<label for=password>Password</label>"
            "<input id=password name=password type=password autocomplete=current-password required>"
            "<button type=submit>Sign in</button></form>")
    return page("Zoho Accounts - Sign in", body, status=401 if error else 200)


def _safe_next(value: str | None) -> str:
    # Only paths on this server: an open redirect after sign-in is a phishing aid.
    return value if value and value.startswith("/") and not value.startswith("//") else f"/{g.dc}/crm/home"


@accounts_pages.route("/signin", methods=["GET", "POST"])
def signin() -> Response:
    if request.method == "GET":
        return signin_page(_safe_next(request.args.get("next")))
    next_url = _safe_next(request.form.get("next"))
    store = current().store
    with store.lock:
        account = store.account_by_email(request.form.get("email", ""))
        ok = account is not None and account.get("password") and account["password"] == request.form.get("password")
    if not ok:
        return signin_page(next_url, "Invalid email or password.")
    return start_session(redirect(next_url, 302), account["zuid"])


@accounts_pages.get("/signin/link/<token>")
def signin_link(token: str) -> Response:
    store = current().store
    with store.lock:
        link = store.signin_links.get(token_hash(token))
        if link is None or link["used"] or link["expires"] <= store.now():
            return page("Link expired", "<h1>This sign-in link is no longer valid</h1>", status=410)
        link["used"] = True
        user = store.users[link["user_id"]]
        dc = store.orgs[user["org_id"]]["dc"]
    return start_session(redirect(f"/{dc}/crm/home", 302), user["zuid"])


@accounts_pages.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    store = current().store
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        with store.lock:
            store.sessions.pop(token_hash(sid), None)
    response = redirect(f"/{g.dc}/accounts/signin", 302)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def issue_signin_link(base_url: str, user_id: str) -> tuple[str, int]:
    store = current().store
    token = new_secret(24)
    with store.lock:
        user = store.users[user_id]
        dc = store.orgs[user["org_id"]]["dc"]
        store.signin_links[token_hash(token)] = {"user_id": user_id, "expires": store.now() + LINK_LIFETIME,
                                                 "used": False}
    return f"{datacentres.accounts_url(base_url, dc)}/signin/link/{token}", LINK_LIFETIME


@crm_web.get("/")
@crm_web.get("/home")
def home() -> Response:
    account = session_account()
    if account is None:
        return redirect(f"/{g.dc}/accounts/signin?" + urlencode({"next": request.full_path.rstrip("?")}), 302)
    if account["dc"] != g.dc:
        return redirect(f"/{account['dc']}/crm/home", 302)
    store = current().store
    with store.lock:
        members = [u for u in store.memberships(account["zuid"]) if store.orgs[u["org_id"]]["dc"] == g.dc]
        sections = [_home_section(store, u) for u in members]
    name = escape(f"{account['first_name']} {account['last_name']}".strip())
    body = (f"<header><strong>Zoho CRM</strong> &middot; <span data-testid=crm-user>{name}</span> "
            f"&lt;{escape(account['email'])}&gt; &middot; <a href='/{g.dc}/accounts/logout'>Sign out</a>"
            f"{_setup_menu(current().setup_menu)}</header><main class=wide><h1>Welcome, {name}</h1>"
            f"{''.join(sections) or '<p>You are not a member of any CRM organization.</p>'}</main>")
    return page("Zoho CRM - Home", body, wide=True)


def _setup_menu(items: list[dict[str, str]]) -> str:
    """Setup, as the CRM's gear menu groups it (Users & Control > Users, Marketplace > ...):
    a disclosure that opens by click or keyboard."""
    if not items:
        return ""
    sections: dict[str, list[str]] = {}
    for item in items:
        sections.setdefault(item["section"], []).append(
            f"<li><a href='{escape(item['url'], quote=True)}'>{escape(item['label'])}</a></li>")
    groups = "".join(f"<h2>{escape(section)}</h2><ul>{''.join(links)}</ul>" for section, links in sections.items())
    return f"<nav aria-label=Setup class=setup><details><summary>Setup</summary><div>{groups}</div></details></nav>"


def _home_section(store: Any, user: dict[str, Any]) -> str:
    org = store.orgs[user["org_id"]]
    profile = store.profiles[user["profile_id"]]["name"]
    rows = []
    for module in records.MODULES:
        mine = [r for r in store.module_records(org["id"], module).values() if r["Owner"] == user["id"]]
        for rec in sorted(mine, key=lambda r: int(r["id"]))[:25]:
            title = rec.get("Event_Title") or f"{rec.get('First_Name') or ''} {rec.get('Last_Name') or ''}".strip()
            rows.append(f"<tr><td>{module}</td><td>{escape(str(title))}</td>"
                        f"<td>{escape(str(rec.get('Email') or rec.get('Start_DateTime') or ''))}</td>"
                        f"<td>{escape(str(rec.get('Data_Source')))}</td></tr>")
    status = "active" if user["confirm"] else "invitation pending"
    return (f"<section data-testid=crm-org data-org-id={org['id']}><h2>{escape(org['company_name'])}</h2>"
            f"<p>Edition: {escape(org['edition'])} &middot; Profile: {escape(profile)} &middot; "
            f"Status: {status} &middot; {directory.full_name(user)}</p>"
            f"<table><tr><th>Module</th><th>Name</th><th>E-mail / start</th><th>Data source</th></tr>"
            f"{''.join(rows)}</table></section>")
