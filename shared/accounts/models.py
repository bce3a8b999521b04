"""What the accounts area stores (Table Storage rows)."""

from __future__ import annotations

from datetime import datetime

from shared.storage import TableEntity


class TenantInstall(TableEntity):
    """An Office 365 tenant where an administrator installed the app (R1.1).

    PartitionKey = tenant id, RowKey = "install".
    """

    installed_at: datetime
    installed_by_object_id: str
    installed_by_email: str
    granted_scope: str
    org_id: str | None = None  # the CRM org the tenant uses, once the installer continued
    org_name: str | None = None
    org_dc: str | None = None


class CrmAccountRef(TableEntity):
    """Which Microsoft identity a CRM user is linked to (one each way, R1.5, R1.6).

    PartitionKey = "crm|{org_id}|{user_id}", RowKey = "link".
    """

    tenant_id: str
    object_id: str
    email: str
    linked_at: datetime


class MemberIdentity(TableEntity):
    """A Microsoft identity linked to a CRM user.

    PartitionKey = "ms|{tenant_id}|{object_id}", RowKey = "member".
    """

    tenant_id: str
    object_id: str
    email: str
    name: str
    org_id: str
    org_name: str
    user_id: str
    crm_email: str
    dc: str
    accounts_server: str
    api_domain: str
    how: str  # created_org, existing_account, associated, invited, approved
    linked_at: datetime
    refresh_token_encrypted: str | None = None


class AuditEvent(TableEntity):
    """One state change: who, what, when, tenant, org.

    PartitionKey = tenant id, RowKey = inverted time + random (newest first).
    """

    at: datetime
    actor: str
    action: str
    tenant_id: str
    org_id: str | None = None
    detail: str = ""
