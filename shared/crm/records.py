"""Records of ``Events`` and ``Contacts`` for the sync engine: streamed, resumable listings,
changes since a watermark, get, batched insert/update/delete, and the deleted-records list.

Listing walks ``page`` 1..10 of 200 (the CRM's 2,000-record window for page numbers), then
continues with the ``page_token`` of the last page (keyset-based, 24 h, bound to the query).
Each yielded page carries the cursor of the page after it, so a queue worker can store that
cursor and the next worker resumes exactly there.

The list API cannot filter by owner (only search or COQL can, each capped at 2,000 rows), so
``owner_id`` is applied here, page by page, on the ``Owner`` field.

Listings sort by ``id`` ascending unless told otherwise: records created during a walk then
land after its end instead of shifting the page numbers under it (with the CRM's default,
descending, every new record would push one already listed onto the next page).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from shared.crm.editions import HEAVY_RECORDS
from shared.crm.errors import CrmError, CrmUnavailable
from shared.crm.models import DeletedRecord, Module, WriteResult, WriteStatus
from shared.crm.session import CrmResponse, CrmSession
from shared.crm.tokens import CrmAuthorizationLost

PER_PAGE = 200  # the CRM's maximum page size
BY_IDS = 100  # ids per read by id (the CRM's limit on ``ids``)
DISCRETE_LIMIT = 2000  # records reachable with ``page``; past it only ``page_token``
MAX_FIELDS = 50
WRITE_BATCH = 100  # records per insert/update call, ids per delete call
# The page_token answers that mean "start the walk again" (expired after 24 h, unknown).
STALE_CURSOR_CODES = frozenset({"EXPIRED_VALUE", "INVALID_DATA", "TOKEN_BOUND_DATA_MISMATCH"})


class ListCursorExpired(CrmError):
    """A saved cursor's page_token is no longer accepted (it lives 24 h): restart the walk."""


class ListQuery(BaseModel):
    """What to list. ``owner_id`` keeps only that user's records (``Owner`` is then
    requested too). ``modified_since`` sends ``If-Modified-Since``, which means "modified
    after" in whole seconds: pass the highest ``Modified_Time`` seen minus one second, or a
    later change within that same second is missed; the re-listed overlap is absorbed by
    the sync engine's version check."""

    model_config = ConfigDict(frozen=True)

    module: Module
    fields: tuple[str, ...]
    sort_by: Literal["id", "Created_Time", "Modified_Time"] = "id"
    sort_order: Literal["asc", "desc"] = "asc"
    modified_since: datetime | None = None
    owner_id: str | None = None

    @field_validator("fields")
    @classmethod
    def _fields_within_limit(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        unique = tuple(dict.fromkeys(f.strip() for f in fields if f.strip()))
        if not unique or len(unique) > MAX_FIELDS:
            raise ValueError(f"between 1 and {MAX_FIELDS} fields (the CRM's limit), got {len(unique)}")
        return unique

    @field_validator("modified_since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("modified_since needs a time zone (the CRM wants an offset)")
        return value

    @model_validator(mode="after")
    def _room_for_owner(self) -> ListQuery:
        if len(self.wire_fields().split(",")) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS - 1} fields with an owner filter (Owner is added)")
        return self

    def wire_fields(self) -> str:
        fields = self.fields if self.owner_id is None or "Owner" in self.fields else (*self.fields, "Owner")
        return ",".join(fields)


class ListCursor(BaseModel):
    """Where a listing continues: ``page`` (1..10) or ``page_token``, never both. JSON-safe,
    to be stored between queue messages (``model_dump_json`` / ``model_validate_json``)."""

    query: ListQuery
    page: int | None = 1
    page_token: str | None = None
    page_token_expiry: str | None = None

    @model_validator(mode="after")
    def _page_or_token(self) -> ListCursor:
        if (self.page is None) == (self.page_token is None):
            raise ValueError("a cursor holds either a page or a page_token")
        if self.page is not None and not 1 <= self.page <= DISCRETE_LIMIT // PER_PAGE:
            raise ValueError(f"pages run from 1 to {DISCRETE_LIMIT // PER_PAGE}; past them only page_token")
        return self


class RecordPage(BaseModel):
    """One page as listed: ``records`` after the owner filter, ``listed`` before it,
    ``next`` the cursor of the following page (None: this was the last)."""

    records: list[dict[str, Any]]
    listed: int
    next: ListCursor | None


class RecordRead(BaseModel):
    state: Literal["found", "not_modified", "not_found"]
    record: dict[str, Any] | None = None


class CrmRecords:
    """The Records API of one member (see ``CrmSessions.for_member``)."""

    def __init__(self, session: CrmSession) -> None:
        self._session = session

    # --- reading ---------------------------------------------------------------------------
    def pages(self, start: ListQuery | ListCursor) -> Iterator[RecordPage]:
        """Stream the listing page by page from the start of ``query`` or from a saved cursor.

        Stops after the last page; yields nothing when there is nothing (204) or nothing
        modified since the watermark (304). Raises ``ListCursorExpired`` for a stale cursor.
        """
        cursor: ListCursor | None = start if isinstance(start, ListCursor) else ListCursor(query=start)
        while cursor is not None:
            page = self._page(cursor)
            if page is None:
                return
            yield page
            cursor = page.next

    def changed_since(self, query: ListQuery) -> Iterator[dict[str, Any]]:
        """Every record matching ``query`` (with its ``modified_since``), one at a time."""
        for page in self.pages(query):
            yield from page.records

    def with_field_values(
        self, module: Module, field: str, values: Collection[str], *, modified_since: datetime
    ) -> dict[str, dict[str, Any]]:
        """The records changed after ``modified_since`` whose ``field`` holds one of ``values``,
        by value: how a create that may have happened before a crash is found again (the
        list API with If-Modified-Since: no search scope needed, no 2,000-record cap)."""
        wanted, found = set(values), {}
        if not wanted:
            return found
        query = ListQuery(module=module, fields=(field, "Modified_Time"), modified_since=modified_since)
        for record in self.changed_since(query):
            value = record.get(field)
            if isinstance(value, str) and value in wanted:
                found.setdefault(value, record)
        return found

    def by_ids(self, module: Module, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Records by id (``GET /{module}?ids=``, 100 a call), keyed by id; an id the CRM no
        longer has is absent. How the initial sync reads its selection in the order it chose."""
        wanted = [i for i in ids if i.isdigit()]  # ids shape the query: only CRM ids
        query = ListQuery(module=module, fields=tuple(fields))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BY_IDS):
            params = {"ids": ",".join(wanted[start:start + BY_IDS]), "fields": query.wire_fields(),
                      "per_page": str(PER_PAGE)}
            response = self._session.call("GET", f"/{module}", repeatable=True, params=params)
            if response.status in (204, 304):
                continue
            found.update((str(r["id"]), r) for r in response.body.get("data") or [])
        return found

    def get(self, module: Module, record_id: str, *, modified_since: datetime | None = None) -> RecordRead:
        """One record with all its fields; ``not_found`` is the CRM saying the id is unknown."""
        if not record_id.isdigit():  # ids come from callbacks too: never let one shape the path
            raise ValueError(f"not a CRM record id: {record_id!r}")
        try:
            response = self._session.call(
                "GET", f"/{module}/{record_id}", repeatable=True, headers=_since_header(modified_since)
            )
        except CrmError as error:
            if error.status == 400 and error.code == "INVALID_DATA" and "id" in error.details:
                return RecordRead(state="not_found")
            raise
        if response.status == 304:
            return RecordRead(state="not_modified")
        data = response.body.get("data") or []
        return RecordRead(state="found", record=data[0]) if data else RecordRead(state="not_found")

    def deleted(
        self, module: Module, *, since: datetime | None = None, kind: Literal["all", "recycle", "permanent"] = "all"
    ) -> Iterator[DeletedRecord]:
        """Records deleted (by people or through the API) after ``since``, newest first.

        Paged by number: a deletion made during the walk pushes the list down, so an entry
        may come twice (harmless for sync) but is never skipped."""
        page = 1
        while True:
            response = self._session.call(
                "GET", f"/{module}/deleted", repeatable=True, headers=_since_header(since),
                params={"type": kind, "page": str(page), "per_page": str(PER_PAGE)},
            )
            if response.status in (204, 304):
                return
            for item in response.body.get("data") or []:
                yield DeletedRecord.model_validate(item)
            if not (response.body.get("info") or {}).get("more_records"):
                return
            page += 1

    # --- writing ---------------------------------------------------------------------------
    def insert(self, module: Module, records: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """Create records, 100 per call; one result per record, in input order."""
        return self._write_batches(module, "POST", records, repeatable=False)

    def update(self, module: Module, records: Sequence[dict[str, Any]], *,
               unmodified_since: datetime | None = None) -> list[WriteResult]:
        """Update records (each carries its ``id``; only the fields given change).
        ``unmodified_since``: a record changed after it is left as it is, an ``error`` result
        with code ``ALREADY_MODIFIED`` (``If-Unmodified-Since``, whole seconds)."""
        missing = [i for i, r in enumerate(records) if not r.get("id")]
        if missing:
            raise ValueError(f"records at {missing} have no id")
        headers = {"If-Unmodified-Since": _wire_time(unmodified_since)} if unmodified_since else None
        return self._write_batches(module, "PUT", records, repeatable=True, headers=headers)

    def delete(self, module: Module, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records (to the CRM's recycle bin), 100 ids per call. An id the CRM does not
        know (already deleted, also by an earlier attempt of this call) is an ``error`` result
        with code ``INVALID_DATA``: for sync, the record is gone either way."""
        results: list[WriteResult] = []
        for offset in range(0, len(ids), WRITE_BATCH):
            chunk = ids[offset:offset + WRITE_BATCH]
            results += self._send_batch(
                offset, len(chunk), len(ids),
                lambda chunk=chunk: self._session.call(
                    "DELETE", f"/{module}", repeatable=True, params={"ids": ",".join(chunk)}, batch_key="data",
                    heavy=len(chunk) > HEAVY_RECORDS,
                ),
            )
            if results[-1].status in ("unknown", "not_sent"):
                break
        return results

    # --- internals -------------------------------------------------------------------------
    def _page(self, cursor: ListCursor) -> RecordPage | None:
        query = cursor.query
        params = {"fields": query.wire_fields(), "per_page": str(PER_PAGE), "sort_by": query.sort_by,
                  "sort_order": query.sort_order}
        if cursor.page_token:
            params["page_token"] = cursor.page_token
        else:
            params["page"] = str(cursor.page or 1)
        try:
            response = self._session.call(
                "GET", f"/{query.module}", repeatable=True, params=params, headers=_since_header(query.modified_since)
            )
        except CrmError as error:
            if cursor.page_token and error.code in STALE_CURSOR_CODES:
                raise ListCursorExpired(error.status, error.code, "the saved listing cursor expired; start again",
                                        error.details) from error
            raise
        if response.status in (204, 304):
            return None
        data: list[dict[str, Any]] = response.body.get("data") or []
        info = response.body.get("info") or {}
        mine = data if query.owner_id is None else [r for r in data if _owner_id(r) == query.owner_id]
        return RecordPage(records=mine, listed=len(data), next=_next_cursor(cursor, info))

    def _write_batches(
        self, module: Module, method: str, records: Sequence[dict[str, Any]], *, repeatable: bool,
        headers: Mapping[str, str] | None = None,
    ) -> list[WriteResult]:
        results: list[WriteResult] = []
        for offset in range(0, len(records), WRITE_BATCH):
            chunk = list(records[offset:offset + WRITE_BATCH])
            results += self._send_batch(
                offset, len(chunk), len(records),
                lambda chunk=chunk: self._session.call(
                    method, f"/{module}", repeatable=repeatable, json={"data": chunk}, batch_key="data", headers=headers,
                    heavy=len(chunk) > HEAVY_RECORDS,
                ),
            )
            if results[-1].status in ("unknown", "not_sent"):
                break  # the rest were added as not_sent: stop while the CRM is unwell
        return results

    def _send_batch(
        self, offset: int, size: int, total: int, send: Callable[[], CrmResponse]
    ) -> list[WriteResult]:
        """Per-record results for records ``offset .. offset+size``; when the call itself
        fails, the chunk is ``unknown`` or ``not_sent`` and so is everything after it."""
        try:
            response = send()
        except CrmAuthorizationLost:
            raise  # the member must be paused; nothing more can be written for them
        except CrmError as error:
            if not isinstance(error, CrmUnavailable):
                raise  # a malformed request (not a record's fault): a bug to see, not to mask
            # A 429 is a refusal before any work; a 5xx or a timeout may come after the work.
            status: WriteStatus = "not_sent" if error.status == 429 else "unknown"
            failed = [WriteResult(index=offset + i, status=status, code=error.code, message=error.message)
                      for i in range(size)]
            rest = [WriteResult(index=i, status="not_sent", code="NOT_SENT", message="an earlier batch failed")
                    for i in range(offset + size, total)]
            return failed + rest
        items = response.body.get("data") or []
        if len(items) != size:
            raise CrmError(response.status, "UNEXPECTED_ANSWER",
                           f"the CRM answered {len(items)} results for {size} records")
        return [_result(offset + i, item) for i, item in enumerate(items)]


def _result(index: int, item: dict[str, Any]) -> WriteResult:
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    ok = item.get("status") == "success"
    return WriteResult(
        index=index,
        status="success" if ok else "error",
        id=str(details["id"]) if ok and details.get("id") else None,
        code=str(item.get("code", "")),
        message=str(item.get("message", "")),
        details=details,
        modified_time=details.get("Modified_Time") if ok else None,
    )


def _next_cursor(cursor: ListCursor, info: dict[str, Any]) -> ListCursor | None:
    if not info.get("more_records"):
        return None
    page = int(info.get("page") or cursor.page or 1)
    token = info.get("next_page_token")
    if cursor.page_token is None and page * PER_PAGE < DISCRETE_LIMIT:
        return ListCursor(query=cursor.query, page=page + 1)
    if not token:
        raise CrmError(200, "NO_PAGE_TOKEN", "the CRM said there are more records but gave no page_token")
    return ListCursor(query=cursor.query, page=None, page_token=str(token),
                      page_token_expiry=info.get("page_token_expiry"))


def _owner_id(record: dict[str, Any]) -> str | None:
    owner = record.get("Owner")
    return str(owner.get("id")) if isinstance(owner, dict) and owner.get("id") is not None else None


def _since_header(since: datetime | None) -> dict[str, str]:
    if since is None:
        return {}
    return {"If-Modified-Since": _wire_time(since)}


def _wire_time(moment: datetime) -> str:
    """The CRM's date-time form for its conditional headers: seconds, explicit offset, no fractions."""
    if moment.tzinfo is None:
        raise ValueError("the CRM's conditional headers need a time zone")
    return moment.replace(microsecond=0).isoformat()
