"""In-memory state of the emulated Microsoft 365 world, loaded from a JSON seed.

One re-entrant lock guards everything: the emulator is a test double, so simplicity beats
throughput. Graph handlers and the control surface change state through the same functions,
so delta queries and change notifications see Outlook-side edits exactly like API edits.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GLOBAL_ADMIN_TEMPLATE_ID = "62e90394-69f5-4237-9190-012177145e10"
DIRECTORY_ROLE_TEMPLATES = {
    "Global Administrator": GLOBAL_ADMIN_TEMPLATE_ID,
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
}
# Roles that may grant tenant-wide admin consent to application permissions.
CONSENT_ADMIN_ROLES = {"Global Administrator", "Privileged Role Administrator", "Cloud Application Administrator"}


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_item_id() -> str:
    """Outlook ids are long, opaque, case-sensitive base64 strings (AAMkA...)."""
    raw = b"\x00\x00\x46" + secrets.token_bytes(45)
    return "AAMkA" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Mailbox:
    user_id: str
    calendars: dict[str, dict] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)
    contact_folders: dict[str, dict] = field(default_factory=dict)
    contacts: dict[str, dict] = field(default_factory=dict)
    messages: dict[str, dict] = field(default_factory=dict)
    transaction_ids: dict[str, str] = field(default_factory=dict)


ChangeListener = Callable[[str, str, str, str, str], None]


class Store:
    def __init__(self, seed: dict | None = None):
        self.lock = threading.RLock()
        self._listeners: list[ChangeListener] = []
        self._seed: dict = copy.deepcopy(seed or {"apps": [], "tenants": []})
        self.reset()

    # ---- seed, reset, snapshot -------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.apps: dict[str, dict] = {}
            self.tenants: dict[str, dict] = {}
            self.users: dict[str, dict] = {}
            self._user_by_upn: dict[str, str] = {}  # lower-case UPN -> id: a lookup per Graph request
            self.mailboxes: dict[str, Mailbox] = {}
            self.consents: list[dict] = []
            # Exchange Online application access policies (New-ApplicationAccessPolicy): per tenant and
            # app, "RestrictAccess" to some mailboxes or "DenyAccess" to some; checked on every call.
            self.access_policies: list[dict] = []
            # Mail sent to addresses outside the seeded tenants (another provider's mailboxes),
            # kept by address so that a test can read what such a person received.
            self.outside_mail: dict[str, list[dict]] = {}
            self.subscriptions: dict[str, dict] = {}
            self.delta_tokens: dict[str, dict] = {}
            self.auth_codes: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self.sessions: dict[str, dict] = {}
            self.pending_authorizations: dict[str, dict] = {}
            self._apply_seed(self._seed)

    def replace_seed(self, seed: dict) -> None:
        with self.lock:
            self._seed = copy.deepcopy(seed)
            self.reset()

    def merge_seed(self, seed: dict) -> None:
        with self.lock:
            self._apply_seed(seed)

    def _apply_seed(self, seed: dict) -> None:
        for app in seed.get("apps", []):
            self.register_app(app)
        for tenant in seed.get("tenants", []):
            self._add_tenant(tenant)
        for consent in seed.get("consents", []):
            self.consents.append(dict(consent))

    def register_app(self, app: dict) -> dict:
        with self.lock:
            client_id = app.get("clientId") or str(uuid.uuid4())
            existing = self.apps.get(client_id, {})
            record = {
                "clientId": client_id,
                "displayName": app.get("displayName", existing.get("displayName", "App")),
                "clientSecrets": list(dict.fromkeys(existing.get("clientSecrets", []) + app.get("clientSecrets", []))),
                "signInAudience": app.get("signInAudience", existing.get("signInAudience", "AzureADMultipleOrgs")),
                "redirectUris": list(dict.fromkeys(existing.get("redirectUris", []) + app.get("redirectUris", []))),
                "requiredApplicationPermissions": app.get(
                    "requiredApplicationPermissions", existing.get("requiredApplicationPermissions", [])
                ),
                "requiredDelegatedScopes": app.get(
                    "requiredDelegatedScopes", existing.get("requiredDelegatedScopes", ["openid", "profile", "User.Read"])
                ),
                "isPublicClient": app.get("isPublicClient", existing.get("isPublicClient", False)),
                # The manifest's id-token optional claims (names, or {"name": ...} as in the manifest)
                # and authenticationBehaviors (removeUnverifiedEmailClaim), as an admin sets them.
                "optionalClaims": app.get("optionalClaims", existing.get("optionalClaims", {"idToken": []})),
                "authenticationBehaviors": app.get(
                    "authenticationBehaviors", existing.get("authenticationBehaviors", {})
                ),
            }
            self.apps[client_id] = record
            return record

    def _add_tenant(self, tenant: dict) -> None:
        from .graph import mailbox_seed  # late import: the graph layer builds items

        tid = tenant["id"]
        self.tenants[tid] = {
            "id": tid,
            "displayName": tenant["displayName"],
            "domain": tenant["domain"],
            # Domains the tenant proved it owns (DNS); the initial domain always is. A user's
            # mail is an attribute any admin can set to anything: it is no proof of an address.
            "verifiedDomains": list(dict.fromkeys([tenant["domain"], *tenant.get("verifiedDomains", [])])),
            "countryLetterCode": tenant.get("countryLetterCode", "US"),
            "password": tenant.get("password"),
            "createdDateTime": tenant.get("createdDateTime", "2020-01-01T00:00:00Z"),
        }
        for user in tenant.get("users", []):
            record = {k: v for k, v in user.items() if k != "mailbox"}
            record.setdefault("id", str(uuid.uuid4()))
            record["tenantId"] = tid
            record.setdefault("password", tenant.get("password"))
            record.setdefault("directoryRoles", [])
            record.setdefault("accountEnabled", True)
            record.setdefault("userType", "Member")
            record.setdefault("businessPhones", [])
            record.setdefault("mail", record["userPrincipalName"])
            self.users[record["id"]] = record
            self._user_by_upn[record["userPrincipalName"].lower()] = record["id"]
            if user.get("mailbox") is not None and user.get("assignedLicenses", [None]):
                box = Mailbox(user_id=record["id"])
                self.mailboxes[record["id"]] = box
                mailbox_seed.populate(self, box, user["mailbox"])

    def mail_domain_verified(self, user: dict) -> bool:
        """Whether the domain of the user's mail is one their tenant verified (what Entra's
        ``xms_edov`` claim says, and what ``removeUnverifiedEmailClaim`` looks at)."""
        mail = str(user.get("mail") or "")
        domain = mail.rpartition("@")[2].lower()
        tenant = self.tenants.get(user["tenantId"], {})
        return bool(domain) and domain in {d.lower() for d in tenant.get("verifiedDomains", [])}

    def snapshot(self) -> dict:
        from .graph import mailbox_seed

        with self.lock:
            return json.loads(
                json.dumps(
                    {
                        "apps": list(self.apps.values()),
                        "tenants": [
                            {
                                **{k: v for k, v in t.items() if k != "password"},
                                "users": [
                                    {
                                        **{k: v for k, v in u.items() if k != "password"},
                                        "mailbox": mailbox_seed.snapshot(self, self.mailboxes[u["id"]])
                                        if u["id"] in self.mailboxes
                                        else None,
                                    }
                                    for u in self.users.values()
                                    if u["tenantId"] == t["id"]
                                ],
                            }
                            for t in self.tenants.values()
                        ],
                        "consents": self.consents,
                        "subscriptions": list(self.subscriptions.values()),
                    },
                    default=_json_default,
                )
            )

    # ---- directory lookups -----------------------------------------------------------
    def find_user(self, id_or_upn: str, tenant_id: str | None = None) -> dict | None:
        with self.lock:
            user = self.users.get(id_or_upn)
            if user is None:
                wanted = id_or_upn.lower()
                user = self.users.get(self._user_by_upn.get(wanted, ""))
                if user is None or user["userPrincipalName"].lower() != wanted:  # renamed since: look
                    user = next((u for u in self.users.values() if u["userPrincipalName"].lower() == wanted), None)
            if user is not None and tenant_id is not None and user["tenantId"] != tenant_id:
                return None
            return user

    def find_user_by_mail(self, address: str) -> dict | None:
        wanted = address.lower()
        with self.lock:
            return next(
                (
                    u
                    for u in self.users.values()
                    if u["userPrincipalName"].lower() == wanted or (u.get("mail") or "").lower() == wanted
                ),
                None,
            )

    def resolve_tenant(self, segment: str) -> dict | None:
        with self.lock:
            if segment in self.tenants:
                return self.tenants[segment]
            return next((t for t in self.tenants.values() if t["domain"].lower() == segment.lower()), None)

    def is_consent_admin(self, user: dict) -> bool:
        return bool(set(user.get("directoryRoles", [])) & CONSENT_ADMIN_ROLES)

    # ---- consents (service principals and grants) ------------------------------------
    def tenant_admin_consent(self, tenant_id: str, client_id: str) -> dict | None:
        with self.lock:
            return next(
                (
                    c
                    for c in self.consents
                    if c["tenantId"] == tenant_id and c["clientId"] == client_id and c["kind"] == "admin"
                ),
                None,
            )

    def has_service_principal(self, tenant_id: str, client_id: str) -> bool:
        with self.lock:
            return any(c["tenantId"] == tenant_id and c["clientId"] == client_id for c in self.consents)

    def service_principal_age_seconds(self, tenant_id: str, client_id: str) -> float | None:
        """Seconds since the tenant's first consent to the app created its service principal
        (None: no consent; a seeded consent without a date counts as long ago)."""
        with self.lock:
            granted = [c.get("grantedDateTime") for c in self.consents
                       if c["tenantId"] == tenant_id and c["clientId"] == client_id]
        if not granted:
            return None
        if any(not g for g in granted):
            return float("inf")
        first = min(dt.datetime.fromisoformat(g) for g in granted)
        return (now_utc() - first).total_seconds()

    def consented_scopes(self, tenant_id: str, client_id: str, user_id: str) -> set[str]:
        with self.lock:
            scopes: set[str] = set()
            for c in self.consents:
                if c["tenantId"] != tenant_id or c["clientId"] != client_id:
                    continue
                if c["kind"] == "admin" or c.get("userId") == user_id:
                    scopes.update(c.get("scopes", []))
            return scopes

    def grant_consent(
        self, tenant_id: str, client_id: str, kind: str, scopes: list[str], user_id: str | None = None,
        app_roles: list[str] | None = None,
    ) -> dict:
        with self.lock:
            for c in self.consents:
                if c["tenantId"] == tenant_id and c["clientId"] == client_id and c["kind"] == kind and c.get("userId") == user_id:
                    c["scopes"] = sorted(set(c["scopes"]) | set(scopes))
                    if app_roles is not None:
                        c["appRoles"] = sorted(set(c.get("appRoles", [])) | set(app_roles))
                    return c
            record = {
                "tenantId": tenant_id, "clientId": client_id, "kind": kind, "userId": user_id,
                "scopes": sorted(set(scopes)), "appRoles": sorted(set(app_roles or [])),
                "grantedDateTime": now_utc().isoformat(),
            }
            self.consents.append(record)
            return record

    # ---- change notifications --------------------------------------------------------
    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def changed(self, user_id: str, kind: str, container_id: str, item_id: str, change_type: str) -> None:
        """Report a change to a mailbox item (kind: event, contact, message) to the listeners."""
        for listener in list(self._listeners):
            listener(user_id, kind, container_id, item_id, change_type)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(type(value))


def load_seed(seed: dict | str | Path | None) -> dict:
    if seed is None:
        return json.loads((Path(__file__).parent / "seed" / "demo.json").read_text())
    if isinstance(seed, dict):
        return seed
    return json.loads(Path(seed).read_text())
