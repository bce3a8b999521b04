"""Loading a seed (the JSON fixture of orgs, users, clients and records) into an empty store.

Date-times in seeded records may be written relative to today, as ``@+2d 10:00`` (two days from
now at 10:00 in the org's offset), so the demo always has upcoming and past meetings.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import directory, records
from .store import Store, format_time

RELATIVE = re.compile(r"^@([+-]\d+)d (\d{2}):(\d{2})$")


def read(seed: dict[str, Any] | str | Path | None) -> dict[str, Any] | None:
    if seed is None or isinstance(seed, dict):
        return seed
    return json.loads(Path(seed).read_text())


def register_client(store: Store, spec: dict[str, Any]) -> dict[str, Any]:
    existing = store.clients.get(spec["client_id"])
    uris = list(dict.fromkeys((existing or {}).get("redirect_uris", []) + list(spec.get("redirect_uris", []))))
    client = {"client_id": spec["client_id"],
              "client_secret": spec.get("client_secret") or (existing or {}).get("client_secret", ""),
              "name": spec.get("name") or (existing or {}).get("name") or spec["client_id"],
              "redirect_uris": uris,
              "first_party": bool(spec.get("first_party", (existing or {}).get("first_party", False)))}
    store.clients[client["client_id"]] = client
    return client


def _resolve_time(value: Any, offset: str, now: float) -> Any:
    match = RELATIVE.match(value) if isinstance(value, str) else None
    if not match:
        return value
    days, hour, minute = int(match[1]), int(match[2]), int(match[3])
    today = datetime.fromisoformat(format_time(now, offset))
    when = (today + timedelta(days=days)).replace(hour=hour, minute=minute, second=0)
    return when.isoformat(timespec="seconds")


def load(store: Store, seed: dict[str, Any]) -> None:
    """Replace the whole state with the seed's world."""
    with store.lock:
        store.clear()
        defaults = seed.get("defaults", {})
        store.default_edition = defaults.get("edition", "standard")
        password = defaults.get("password")
        for spec in seed.get("clients", []):
            register_client(store, spec)
        for spec in seed.get("orgs", []):
            _load_org(store, spec, password)


def _load_org(store: Store, spec: dict[str, Any], password: str | None) -> None:
    org = directory.create_org(store, spec["company_name"], spec.get("edition", store.default_edition),
                               spec.get("dc", "us"), spec.get("licenses"), spec.get("id"))
    by_email = {}
    for person in spec.get("users", []):
        user = directory.add_user(store, org["id"], person["email"], person.get("first_name", ""),
                                  person["last_name"], person.get("profile", "Standard"), person.get("role"),
                                  confirmed=person.get("confirmed", True),
                                  password=person.get("password", password), user_id=person.get("id"))
        if person.get("super_admin"):
            org["primary_user_id"] = user["id"]
        by_email[person["email"].lower()] = user
    if org["primary_user_id"] is None and by_email:
        org["primary_user_id"] = next(iter(by_email.values()))["id"]
    for module, items in spec.get("records", {}).items():
        for index, item in enumerate(items):
            item = dict(item)
            owner = by_email[item.pop("Owner").lower()] if "Owner" in item else store.users[org["primary_user_id"]]
            source = item.pop("Data_Source", "Manual")
            for name in records.MODULES[module]["datetimes"]:
                if name in item:
                    item[name] = _resolve_time(item[name], org["utc_offset"], store.now())
            fields, problem = records.validate(store, org["id"], module, item, index, None)
            if problem:
                raise ValueError(f"seed record {module}[{index}] of {org['company_name']}: {problem}")
            fields["Owner"] = owner["id"]
            records.create_record(store, org["id"], module, owner["id"], fields, source)
