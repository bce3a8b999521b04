"""A tiny in-memory CRM, Outlook, link store and conflict log, with the real executor
(``shared.sync.executor.Executor``) carrying out the engine's plans on them (issue 17 §2).

The in-memory sides implement the sync's ports (``shared.sync.ports``), the contract that
``tests/integration/test_sync_ports.py`` also holds the production adapters to. A crash can
be injected before any write the executor makes: each item written to either side and each
link-row transaction spends one step of a budget. Each side keeps a change log (what its delta
would report); a successful sync consumes the entries it observed, a crashed one does not (the
delta cursor is only saved after a successful cycle). Our own writes land in the log too, as
they do in a real delta: they are the echoes the engine must ignore.

Every item carries an ``origin``: the user-created item it descends from. "Nothing is
created twice" then reads: no side ever holds two items of one origin.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from shared.crm.models import Module, WriteResult
from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError
from shared.sync import (
    ConflictPolicy,
    DeleteSignal,
    ItemDeleted,
    ItemSeen,
    LinkRow,
    LinkState,
    Normalisation,
    Plan,
    Side,
    SideChanges,
    check_deletions_are_signalled,
    plan,
)
from shared.sync.actions import Conflict
from shared.sync.executor import Executor
from shared.sync.fingerprint import email, single_line
from shared.sync.kind import CRM_MARKER_FIELD, KindRules

NORMALISATION = Normalisation({"email": email, "subject": single_line})
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PARTITION = "member|test|g1"
CONTAINER = "container"


class Crash(Exception):
    """The executor process died before one of its writes."""


@dataclass
class Budget:
    """How many writes the executor may make before it crashes (None: no crash)."""

    left: int | None = None
    # An initial sync sends two pages at once (and commits in the background): one count.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spend(self) -> None:
        with self._lock:
            if self.left is not None:
                if self.left == 0:
                    raise Crash
                self.left -= 1


@dataclass
class Item:
    version: str
    fields: dict[str, JsonValue]
    modified_at: datetime
    origin: str
    marker: str | None = None


@dataclass(frozen=True)
class Container:
    """Our calendar or folder as Graph returns it."""

    id: str
    name: str


@dataclass(frozen=True)
class WrittenItem:
    """What Graph answers for an item it created or patched."""

    id: str
    change_key: str | None


@dataclass
class Clock:
    ticks: itertools.count = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return START + timedelta(minutes=next(self.ticks))


@dataclass
class Store:
    """One side: items by id, a change log, and Graph-like transactionId memory. The Outlook
    store is an ``OutlookItems`` port, the CRM one a ``CrmRecordWrites`` port."""

    side: Side
    clock: Clock
    budget: Budget
    render: Callable[[dict[str, JsonValue]], dict[str, JsonValue]] = lambda fields: fields
    honours_transaction_id: bool = False  # Graph does; the CRM has no such thing
    origin_of: Callable[[str], str] = lambda marker: marker  # the origin of the item a marker names
    items: dict[str, Item] = field(default_factory=dict)
    log: dict[str, int] = field(default_factory=dict)
    transactions: dict[str, str] = field(default_factory=dict)
    ours: set[int] = field(default_factory=set)  # log positions written by the sync itself
    created: set[int] = field(default_factory=set)  # of those, the creates
    # Items a user changed since the last consumed read: a delta reports them whatever we
    # wrote after (its cursor is before the user's change), so their entries are never lost.
    user_changed: set[str] = field(default_factory=set)
    deleted_by_sync: set[str] = field(default_factory=set)  # origins of the items our deletes removed
    deleted_at: dict[str, datetime] = field(default_factory=dict)  # the CRM's deleted list
    # Versions are modification times, as the CRM's are (``Modified_Time``): what a conditional
    # write (If-Unmodified-Since) compares. Otherwise "{side}-v{n}".
    time_versions: bool = False
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _stamp(self, item_id: str, *, ours: bool = False, at: datetime | None = None) -> str:
        number = next(self._numbers)
        if ours:
            self.ours.add(number)
        else:
            self.user_changed.add(item_id)
        self.log.pop(item_id, None)
        self.log[item_id] = number
        return at.isoformat() if self.time_versions and at is not None else f"{self.side}-v{number}"

    # -- what people do ------------------------------------------------------------------

    def user_create(self, fields: Mapping[str, JsonValue]) -> str:
        item_id, now = f"{self.side}-{next(self._numbers)}", self.clock.now()
        self.items[item_id] = Item(self._stamp(item_id, at=now), dict(fields), now, origin=item_id)
        return item_id

    def user_edit(self, item_id: str, changes: Mapping[str, JsonValue]) -> None:
        item = self.items[item_id]
        item.fields = {**item.fields, **changes}
        now = self.clock.now()
        item.version, item.modified_at = self._stamp(item_id, at=now), now

    def touch(self, item_id: str) -> None:
        """A change outside the mapped fields (Exchange's own, a reminder flag...)."""
        now = self.clock.now()
        self.items[item_id].version = self._stamp(item_id, at=now)
        if self.time_versions:
            self.items[item_id].modified_at = now

    def delete(self, item_id: str, *, ours: bool = False) -> None:
        del self.items[item_id]
        self._stamp(item_id, ours=ours)
        self.deleted_at[item_id] = self.clock.now()

    # -- what the sync does (one budget step per item written) --------------------------

    def write_create(self, fields: Mapping[str, JsonValue], marker: str, transaction_id: str | None) -> tuple[str, str]:
        self.budget.spend()
        if self.honours_transaction_id and transaction_id and self.transactions.get(transaction_id) in self.items:
            item_id = self.transactions[transaction_id]  # Graph returns the earlier item for a repeated transactionId
            return item_id, self.items[item_id].version
        item_id, now = f"{self.side}-{next(self._numbers)}", self.clock.now()
        self.items[item_id] = Item("", self.render(dict(fields)), now, self.origin_of(marker), marker)
        self.items[item_id].version = self._stamp(item_id, ours=True, at=now)
        self.created.add(self.log[item_id])
        if transaction_id:
            self.transactions[transaction_id] = item_id
        return item_id, self.items[item_id].version

    def write_update(self, item_id: str, fields: Mapping[str, JsonValue]) -> str | None:
        self.budget.spend()
        item = self.items.get(item_id)
        if item is None:
            return None
        item.fields = self.render({**item.fields, **fields})
        item.fields = {name: value for name, value in item.fields.items() if value is not None}
        now = self.clock.now()
        item.version, item.modified_at = self._stamp(item_id, ours=True, at=now), now
        return item.version

    def write_delete(self, item_id: str) -> bool:
        self.budget.spend()
        if item_id not in self.items:
            return False
        self.deleted_by_sync.add(self.items[item_id].origin)
        self.delete(item_id, ours=True)
        return True

    # -- what a delta read reports ----------------------------------------------------------

    def observe(self) -> tuple[SideChanges, int]:
        """What a delta read would report now, and the log position it reached."""
        seen, deleted = [], []
        signal = DeleteSignal.GRAPH_REMOVED if self.side is Side.OUTLOOK else DeleteSignal.CRM_DELETED_LIST
        for item_id in self.log:
            item = self.items.get(item_id)
            if item is None:
                deleted.append(ItemDeleted(item_id, signal))
            else:
                seen.append(ItemSeen(item_id, item.version, dict(item.fields), item.modified_at, item.marker))
        return SideChanges(tuple(seen), tuple(deleted)), max(self.log.values(), default=0)

    def forget_our_writes(self) -> None:
        """Lose the log entries of our own creates: the adversary of ``Create.recover``, which
        must find such an item by its marker alone. User changes stay, also when we wrote
        the item after them: the cursor is before the user's change, so the item is reported
        again (at its latest version). Our updates stay too: the product saves its cursors
        (Graph's delta link, the CRM watermark) only with a step's release, so a step that
        died after an update is read again from before it; an update has no marker to be
        found by, and losing its echo would lose the write itself (found by exploring)."""
        self.log = {item_id: number for item_id, number in self.log.items()
                    if number not in self.created or item_id in self.user_changed}

    def consume(self, upto: int) -> None:
        self.user_changed -= {item_id for item_id, number in self.log.items() if number <= upto}
        self.log = {item_id: number for item_id, number in self.log.items() if number > upto}


@dataclass
class OutlookInMemory:
    """The ``OutlookItems`` port over the Outlook store (Graph's answers, item by item)."""

    store: Store

    def ensure_container(self, name: str) -> Any:
        return Container(CONTAINER, name)

    def delete_container(self, container_id: str) -> bool:
        return True

    def create_items(self, container_id: str, drafts: Sequence[ItemDraft]) -> list[WrittenItem | GraphError]:
        return [WrittenItem(*self.store.write_create(d.fields, d.crm_id, d.transaction_id)) for d in drafts]

    def update_items(self, container_id: str, changes: Sequence[tuple[str, dict[str, Any]]], *,
                     if_match: Sequence[str | None] | None = None) -> list[WrittenItem | GraphError]:
        results: list[WrittenItem | GraphError] = []
        for (item_id, fields), key in zip(changes, if_match or [None] * len(changes), strict=True):
            current = self.store.items.get(item_id)
            if key and current is not None and current.version != key:
                results.append(GraphError(412, "ErrorIrresolvableConflict", "the change key does not match"))
                continue
            version = self.store.write_update(item_id, fields)
            results.append(WrittenItem(item_id, version) if version else GraphError(404, "ErrorItemNotFound", "gone"))
        return results

    def delete_items(self, container_id: str, item_ids: Sequence[str]) -> list[bool | GraphError]:
        return [self.store.write_delete(item_id) for item_id in item_ids]

    def find_items_by_crm_id(self, container_id: str, crm_id: str) -> list[WrittenItem]:
        return [WrittenItem(i, item.version) for i, item in sorted(self.store.items.items()) if item.marker == crm_id]

    def get_items(self, container_id: str, item_ids: Sequence[str]) -> list[WrittenItem | GraphError]:
        return [WrittenItem(i, self.store.items[i].version) if i in self.store.items
                else GraphError(404, "ErrorItemNotFound", "gone") for i in item_ids]

    def after_write(self, container_id: str, item_id: str, before: Any, after: Any) -> None:
        return None  # nothing a body cannot say (the calendar's cancelled occurrences)


def _unused(*_: Any) -> Any:
    raise AssertionError("the executor does not read through this")


class WorldRules(KindRules):
    """The World's kind: its fields are written as they are; the steps that read (the
    runner's) are not the executor's business."""

    name = "test"
    crm_module = "Contacts"
    container_name = "Test"
    normalisation = NORMALISATION
    initial_cap = 1000
    scan_fields = ()
    crm_fields = ()  # type: ignore[assignment]
    crm_to_seen = outlook_to_seen = initial_key = excluded = _unused  # type: ignore[assignment]
    label_of = staticmethod(lambda fields: "")  # type: ignore[assignment]
    crm_label = _unused  # type: ignore[assignment]

    def to_crm(self, fields: Any, merged: Any) -> dict[str, Any]:
        return dict(fields)

    def to_outlook(self, fields: Any, merged: Any) -> dict[str, Any]:
        return dict(fields)


@dataclass
class CrmInMemory:
    """The ``CrmRecordWrites`` port over the CRM store (the CRM's per-record results)."""

    store: Store
    # Test knobs: the code the CRM refuses a record with (None: accepted), and whether the answer
    # to an applied write is lost (a timeout after the work: status "unknown").
    refuse: Callable[[dict[str, Any]], str | None] = lambda body: None
    answer_lost: Callable[[dict[str, Any]], bool] = lambda body: False
    lookups: int = 0

    def insert(self, module: Module, records: Sequence[dict[str, Any]]) -> list[WriteResult]:
        results = []
        for index, body in enumerate(records):
            refused = self.refuse(body)
            if refused:
                self.store.budget.spend()
                results.append(WriteResult(index=index, status="error", code=refused, message="refused"))
                continue
            fields = {k: v for k, v in body.items() if k not in (CRM_MARKER_FIELD, "Owner")}
            item_id, version = self.store.write_create(fields, str(body.get(CRM_MARKER_FIELD) or ""), None)
            results.append(WriteResult(index=index, status="unknown", code="INTERNAL_ERROR") if self.answer_lost(body)
                           else WriteResult(index=index, status="success", id=item_id, modified_time=version))
        return results

    def update(self, module: Module, records: Sequence[dict[str, Any]], *,
               unmodified_since: datetime | None = None) -> list[WriteResult]:
        results = []
        for index, body in enumerate(records):
            current = self.store.items.get(str(body["id"]))
            if unmodified_since is not None and current is not None and current.modified_at > unmodified_since:
                results.append(WriteResult(index=index, status="error", id=str(body["id"]), code="ALREADY_MODIFIED"))
                continue
            version = self.store.write_update(str(body["id"]), {k: v for k, v in body.items() if k != "id"})
            results.append(WriteResult(index=index, status="success", id=str(body["id"]), modified_time=version) if version
                           else WriteResult(index=index, status="error", id=str(body["id"]), code="INVALID_DATA"))
        return results

    def with_field_values(self, module: Module, field: str, values: Collection[str], *,
                          modified_since: datetime) -> dict[str, dict[str, Any]]:
        assert field == CRM_MARKER_FIELD  # the store keeps our marker apart from the fields
        self.lookups += 1
        return {item.marker: {"id": item_id, field: item.marker, "Modified_Time": item.version}
                for item_id, item in sorted(self.store.items.items(), reverse=True)
                if item.marker in values and item.modified_at > modified_since}

    def delete(self, module: Module, ids: Sequence[str]) -> list[WriteResult]:
        return [WriteResult(index=index, status="success", id=item_id) if self.store.write_delete(item_id)
                else WriteResult(index=index, status="error", id=item_id, code="INVALID_DATA")
                for index, item_id in enumerate(ids)]


@dataclass
class LinkRowsInMemory:
    """The ``LinkRows`` port in memory: one dict of rows per partition; each ``write`` and
    ``forget`` is one transaction, one budget step (Table Storage's entity-group batch)."""

    budget: Budget
    partitions: dict[str, dict[str, LinkRow]] = field(default_factory=dict)

    def rows(self, partition: str) -> dict[str, LinkRow]:
        return self.partitions.setdefault(partition, {})

    def load(self, partition: str, *, crm_ids: Iterable[str] = (), outlook_ids: Iterable[str] = (),
             every: list[LinkRow] | None = None) -> list[LinkRow]:
        crm, outlook = set(crm_ids), set(outlook_ids)
        return [row for row in (self.all(partition) if every is None else every)
                if row.state is not LinkState.TOMBSTONE and (row.crm_id in crm or row.outlook_id in outlook)
                or row.state.creating_on is not None]

    def names_any(self, partition: str, crm_ids: Iterable[str], *, pairs: int | None = None) -> bool:
        wanted = set(crm_ids)
        return any(row.crm_id in wanted and row.state is not LinkState.TOMBSTONE for row in self.rows(partition).values())

    def pending(self, partition: str) -> list[LinkRow]:
        return [row for row in self.rows(partition).values() if row.state.creating_on is not None]

    def all(self, partition: str) -> list[LinkRow]:
        return list(self.rows(partition).values())

    def series_outlook_ids(self, partition: str) -> list[str]:
        return [row.outlook_id for row in self.rows(partition).values()
                if row.outlook_id and row.state is not LinkState.TOMBSTONE and row.fields.get("recurrence")]

    def write(self, partition: str, rows: Sequence[tuple[LinkRow | None, LinkRow]]) -> None:
        self.budget.spend()
        self.rows(partition).update({row.link_id: row for _, row in rows})

    def forget(self, partition: str, rows: Sequence[LinkRow]) -> None:
        self.budget.spend()
        for row in rows:
            self.rows(partition).pop(row.link_id, None)

    def purge(self, partition: str) -> int:
        return sum(1 for _ in self.partitions.pop(partition, {}).values())


@dataclass
class ConflictLogInMemory:
    """The ``ConflictLog`` port in memory: one entry per conflict id."""

    budget: Budget
    partitions: dict[str, dict[str, Conflict]] = field(default_factory=dict)

    def record(self, partition: str, conflicts: list[Conflict]) -> None:
        self.budget.spend()
        self.partitions.setdefault(partition, {}).update({c.conflict_id: c for c in conflicts})

    def recent(self, partition: str, limit: int = 20) -> list[Conflict]:
        return sorted(self.partitions.get(partition, {}).values(), key=lambda c: c.detected_at, reverse=True)[:limit]

    def purge(self, partition: str) -> None:
        self.partitions.pop(partition, None)


def outlook_render(fields: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Exchange stores e-mail addresses lower-cased: equal data, different bytes."""
    if isinstance(fields.get("email"), str):
        return {**fields, "email": fields["email"].lower()}  # type: ignore[union-attr]
    return fields


@dataclass
class World:
    """Both sides, the link store, the conflict log, and what the sync has done so far."""

    clock: Clock = field(default_factory=Clock)
    budget: Budget = field(default_factory=Budget)
    user_deleted: set[str] = field(default_factory=set)  # origins the user deleted somewhere

    def __post_init__(self) -> None:
        self.known: dict[str, LinkRow] = {}
        self.crm = Store(Side.CRM, self.clock, self.budget, origin_of=self._origin_in(Side.OUTLOOK))
        self.outlook = Store(Side.OUTLOOK, self.clock, self.budget, render=outlook_render, honours_transaction_id=True,
                             origin_of=self._origin_in(Side.CRM))
        self.link_rows = LinkRowsInMemory(self.budget)
        self.conflict_log = ConflictLogInMemory(self.budget)
        self.crm_port = CrmInMemory(self.crm)
        self.executor = Executor(WorldRules("owner", None), OutlookInMemory(self.outlook), self.crm_port, self.link_rows, self.conflict_log,
                                 partition=PARTITION, container_id=CONTAINER, owner_id="owner", clock=self.clock.now)

    def _origin_in(self, side: Side) -> Callable[[str], str]:
        """The origin of a created item: that of the item its marker names on ``side``."""
        def origin(marker: str) -> str:
            source = self.store(side).items.get(marker)
            return source.origin if source is not None else marker
        return origin

    @property
    def links(self) -> dict[str, LinkRow]:
        return self.link_rows.rows(PARTITION)

    @property
    def conflicts(self) -> dict[str, Conflict]:
        return self.conflict_log.partitions.get(PARTITION, {})

    @property
    def sync_deleted(self) -> set[str]:
        """Origins our sync deleted somewhere."""
        return self.crm.deleted_by_sync | self.outlook.deleted_by_sync

    def store(self, side: Side) -> Store:
        return self.crm if side is Side.CRM else self.outlook

    def user_delete(self, side: Side, item_id: str) -> None:
        self.user_deleted.add(self.store(side).items[item_id].origin)
        self.store(side).delete(item_id)

    def make_plan(self, policy: ConflictPolicy = ConflictPolicy.MOST_RECENT) -> tuple[Plan, int, int]:
        crm, crm_upto = self.crm.observe()
        outlook, outlook_upto = self.outlook.observe()
        # The rows the reported items belong to, read as the real cycle reads them (cycle.py).
        crm_ids = {s.item_id for s in crm.seen} | {d.item_id for d in crm.deleted} | {s.partner_id for s in outlook.seen if s.partner_id}
        outlook_ids = ({s.item_id for s in outlook.seen} | {d.item_id for d in outlook.deleted}
                       | {s.partner_id for s in crm.seen if s.partner_id})
        self.known = {row.link_id: row for row in self.link_rows.load(PARTITION, crm_ids=crm_ids, outlook_ids=outlook_ids)}
        result = plan(
            self.known.values(),
            crm,
            outlook,
            now=self.clock.now(),
            policy=policy,
            normalisation=NORMALISATION,
        )
        check_deletions_are_signalled(result, crm, outlook)
        return result, crm_upto, outlook_upto

    def sync(self, policy: ConflictPolicy = ConflictPolicy.MOST_RECENT, budget: int | None = None) -> Plan:
        """Observe, plan, execute; with ``budget``, crash before that many writes (raises Crash)."""
        result, crm_upto, outlook_upto = self.make_plan(policy)
        self.budget.left = budget
        try:
            self.executor.apply(result, dict(self.known))
        finally:
            self.budget.left = None
        self.crm.consume(crm_upto)
        self.outlook.consume(outlook_upto)
        return result


def live_links(world: World) -> list[LinkRow]:
    return [row for row in world.links.values() if row.state is not LinkState.TOMBSTONE]
