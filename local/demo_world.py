"""The demo identities seeded in the emulators (emulators/*/seed/demo.json), as printed by
``make run`` and written to .local/stack.json. Kept in step with those seed files."""

from __future__ import annotations

from typing import Any

APP_REGISTRATION = {
    "client_id": "5f0c8d2e-6a1b-4c3d-9e8f-7a6b5c4d3e2f",
    "client_secret": "demo-app-secret-change-me",
}
CRM_CLIENT = {
    "client_id": "1000.DEMOLOCALCLIENT0001",
    "client_secret": "demo-crm-client-secret",
}
CONTOSO_TENANT = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
FABRIKAM_TENANT = "3d9a4c2e-8b7f-4a61-9e0d-5c4b3a291807"

DEMO: dict[str, Any] = {
    "tenant_id": CONTOSO_TENANT,
    "admin": {"email": "adele@contoso.test", "password": "Contoso-Demo-1", "name": "Adele Vance"},
    "users": [
        {"email": "megan@contoso.test", "password": "Contoso-Demo-1", "name": "Megan Bowen"},
        {"email": "alex@contoso.test", "password": "Contoso-Demo-1", "name": "Alex Wilber"},
        {"email": "lynne@contoso.test", "password": "Contoso-Demo-1", "name": "Lynne Robbins"},
        {"email": "diego@contoso.test", "password": "Contoso-Demo-1", "name": "Diego Siciliani"},
    ],
    "other_tenants": [
        {
            "tenant_id": FABRIKAM_TENANT,
            "admin": {"email": "fabrice@fabrikam.test", "password": "Fabrikam-Demo-1", "name": "Fabrice Martin"},
            "users": [{"email": "nadia@fabrikam.test", "password": "Fabrikam-Demo-1", "name": "Nadia Leroy"}],
            "note": "Fabrice's e-mail already has a CRM account (Fabrikam Sales, enterprise)",
        }
    ],
    "crm_only_accounts": [
        {
            "email": "sam.carter@samconsulting.example",
            "password": "Crm-Demo-1",
            "org": "Sam Carter Consulting (professional, eu)",
            "profile": "Administrator",
        },
        {
            "email": "rita@samconsulting.example",
            "password": "Crm-Demo-1",
            "org": "Sam Carter Consulting (professional, eu)",
            "profile": "Standard (no Manage Users)",
        },
        {"email": "tina@tinybakery.example", "password": "Crm-Demo-1", "org": "Tiny Bakery (free)", "profile": "Administrator"},
        {"email": "fabrice@fabrikam.test", "password": "Crm-Demo-1", "org": "Fabrikam Sales (enterprise)", "profile": "Administrator"},
    ],
}


def crm_setup_menu(public_base_url: str) -> list[dict[str, str]]:
    """Where the CRM's Setup menu leads into the product (the emulator's stand-in for the
    real CRM's Setup > Users & Control > Users and Setup > Marketplace > Microsoft)."""
    return [
        {"section": "Users & Control", "label": "Users", "url": f"{public_base_url}/api/settings/users"},
        {"section": "Marketplace", "label": "Microsoft", "url": f"{public_base_url}/api/settings/microsoft"},
    ]
