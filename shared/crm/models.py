"""What the CRM sync client takes and gives at its boundary (pydantic v2).

``CrmMemberAccess`` is everything needed to act in the CRM as one member; the other models
are the client's answers, shaped for the sync engine rather than copied from the wire.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

# The two modules the product syncs (Zoho's API name for Meetings is ``Events``).
Module = Literal["Events", "Contacts"]


class CrmMemberAccess(BaseModel):
    """Acting as one CRM member: their org and user, their data centre, their refresh token.

    ``edition`` (free, standard, professional, enterprise, ultimate), when known, caps how
    many calls this process makes to the org at once (the CRM's per-org concurrency).
    """

    model_config = ConfigDict(frozen=True)

    org_id: str
    user_id: str
    accounts_server: str
    api_domain: str
    refresh_token: SecretStr
    edition: str | None = None


WriteStatus = Literal["success", "error", "unknown", "not_sent"]


class WriteResult(BaseModel):
    """The outcome for one record of an insert, update or delete, at its input position.

    ``success`` and ``error`` are the CRM's own answer for that record. ``unknown``: the call
    carrying it failed in a way that leaves open whether the CRM applied it (a timeout or a
    5xx): an update or delete can simply be sent again, a create must not be repeated
    blindly (look for the record first). ``not_sent``: the CRM did not apply it (refused as
    throttled after our retries, or an earlier part of the batch failed first); send again.
    """

    index: int
    status: WriteStatus
    id: str | None = None
    code: str = ""
    message: str = ""
    details: dict[str, Any] = {}
    modified_time: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"


class DeletedRecord(BaseModel):
    """One entry of ``GET /{module}/deleted``: deleted by a person or through the API."""

    id: str
    type: str  # "recycle" (in the recycle bin) or "permanent"
    deleted_time: str
    display_name: str | None = None
    deleted_by: dict[str, Any] | None = None
    created_by: dict[str, Any] | None = None
