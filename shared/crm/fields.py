"""The CRM's field metadata of a module (``GET /settings/fields?module=...``, scope
``ZohoCRM.settings.fields.READ``), as the field-mapping window needs it (SPEC R4.2: "from the
CRM's field metadata where available, else the documented list")."""

from __future__ import annotations

from typing import Any

from shared.crm.errors import CrmError
from shared.crm.models import Module
from shared.crm.session import CrmSession


class CrmFields:
    """The Fields Metadata API of one member (see ``CrmSessions.for_member``)."""

    def __init__(self, session: CrmSession) -> None:
        self._session = session

    def fields(self, module: Module) -> list[dict[str, Any]]:
        """The ``fields`` array of ``module``'s metadata, each entry as the CRM sent it.

        Raises ``CrmError`` (also when the answer holds no ``fields`` array: a CRM that
        answers without them has not described the module) and its subclasses."""
        response = self._session.call("GET", "/settings/fields", repeatable=True, params={"module": module})
        fields = response.body.get("fields")
        if not isinstance(fields, list):
            raise CrmError(502, "NO_FIELDS", f"the CRM did not describe the fields of {module}")
        return [dict(field) for field in fields if isinstance(field, dict)]
