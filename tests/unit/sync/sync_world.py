"""A tiny in-memory CRM, Outlook and link store, and an applier that executes plans on them.

The applier follows the executor contract of ``shared.sync.actions`` step by step, so a
crash can be injected between any two steps. Each side keeps a change log (what its delta
would report); a successful sync consumes the entries it observed, a crashed one does not
(the delta cursor is only saved after a successful cycle). Our own writes land in the log
too, as they do in a real delta: they are the echoes the engine must ignore.

Every item carries an ``origin``: the user-created item it descends from. "Nothing is
created twice" then reads: no side ever holds two items of one origin.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import JsonValue

from shared.sync import (
    Adopt,
    ConflictPolicy,
    Create,
    Delete,
    DeleteSignal,
    ForgetLink,
    ItemDeleted,
    ItemSeen,
    LinkRow,
    LinkState,
    Normalisation,
    Plan,
    RecordConflict,
    Side,
    SideChanges,
    Skip,
    Tombstone,
    Update,
    check_deletions_are_signalled,
    plan,
)
from shared.sync.fingerprint import email, single_line

NORMALISATION = Normalisation({"email": email, "subject": single_line})
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Crash(Exception):
    """The executor process died between two steps."""


@dataclass
class Item:
    version: str
    fields: dict[str, JsonValue]
    modified_at: datetime
    origin: str
    marker: str | None = None


@dataclass
class Clock:
    ticks: itertools.count = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return START + timedelta(minutes=next(self.ticks))


@dataclass
class Store:
    """One side: items by id, a change log, and Graph-like transactionId memory."""

    side: Side
    clock: Clock
    render: Callable[[dict[str, JsonValue]], dict[str, JsonValue]] = lambda fields: fields
    honours_transaction_id: bool = False  # Graph does; the CRM has no such thing
    items: dict[str, Item] = field(default_factory=dict)
    log: dict[str, int] = field(default_factory=dict)
    transactions: dict[str, str] = field(default_factory=dict)
    ours: set[int] = field(default_factory=set)  # log positions written by the sync itself
    # Items a user changed since the last consumed read: a delta reports them whatever we
    # wrote after (its cursor is before the user's change), so their entries are never lost.
    user_changed: set[str] = field(default_factory=set)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _stamp(self, item_id: str, *, ours: bool = False) -> str:
        number = next(self._numbers)
        if ours:
            self.ours.add(number)
        else:
            self.user_changed.add(item_id)
        self.log.pop(item_id, None)
        self.log[item_id] = number
        return f"{self.side}-v{number}"

    def user_create(self, fields: Mapping[str, JsonValue]) -> str:
        item_id = f"{self.side}-{next(self._numbers)}"
        self.items[item_id] = Item(self._stamp(item_id), dict(fields), self.clock.now(), origin=item_id)
        return item_id

    def user_edit(self, item_id: str, changes: Mapping[str, JsonValue]) -> None:
        item = self.items[item_id]
        item.fields = {**item.fields, **changes}
        item.version, item.modified_at = self._stamp(item_id), self.clock.now()

    def touch(self, item_id: str) -> None:
        """A change outside the mapped fields (Exchange's own, a reminder flag...)."""
        self.items[item_id].version = self._stamp(item_id)

    def delete(self, item_id: str, *, ours: bool = False) -> None:
        del self.items[item_id]
        self._stamp(item_id, ours=ours)

    def write_create(
        self, fields: Mapping[str, JsonValue], marker: str, key: str, origin: str
    ) -> tuple[str, str]:
        if self.honours_transaction_id and self.transactions.get(key) in self.items:
            item_id = self.transactions[key]  # Graph returns the earlier item for a repeated transactionId
            return item_id, self.items[item_id].version
        item_id = f"{self.side}-{next(self._numbers)}"
        self.items[item_id] = Item("", self.render(dict(fields)), self.clock.now(), origin, marker)
        self.items[item_id].version = self._stamp(item_id, ours=True)
        self.transactions[key] = item_id
        return item_id, self.items[item_id].version

    def write_update(self, item_id: str, fields: Mapping[str, JsonValue]) -> str:
        item = self.items[item_id]
        item.fields = self.render({**item.fields, **fields})
        item.fields = {name: value for name, value in item.fields.items() if value is not None}
        item.version, item.modified_at = self._stamp(item_id, ours=True), self.clock.now()
        return item.version

    def find_by_marker(self, marker: str) -> str | None:
        return next((item_id for item_id, item in sorted(self.items.items()) if item.marker == marker), None)

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
        """Lose the log entries of our own writes: a runner that saved its delta cursor
        mid-cycle, or a delta that coalesced them away. User changes stay, also when we
        wrote the item after them: the cursor is before the user's change, so the item is
        reported again (at its latest version)."""
        self.log = {item_id: number for item_id, number in self.log.items()
                    if number not in self.ours or item_id in self.user_changed}

    def consume(self, upto: int) -> None:
        self.user_changed -= {item_id for item_id, number in self.log.items() if number <= upto}
        self.log = {item_id: number for item_id, number in self.log.items() if number > upto}


def outlook_render(fields: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Exchange stores e-mail addresses lower-cased: equal data, different bytes."""
    if isinstance(fields.get("email"), str):
        return {**fields, "email": fields["email"].lower()}  # type: ignore[union-attr]
    return fields


@dataclass
class World:
    """Both sides, the link store, and what the sync has done so far."""

    clock: Clock = field(default_factory=Clock)
    links: dict[str, LinkRow] = field(default_factory=dict)
    conflicts: dict[str, RecordConflict] = field(default_factory=dict)
    user_deleted: set[str] = field(default_factory=set)  # origins the user deleted somewhere
    sync_deleted: set[str] = field(default_factory=set)  # origins our sync deleted somewhere

    def __post_init__(self) -> None:
        self.crm = Store(Side.CRM, self.clock)
        self.outlook = Store(Side.OUTLOOK, self.clock, render=outlook_render, honours_transaction_id=True)

    def store(self, side: Side) -> Store:
        return self.crm if side is Side.CRM else self.outlook

    def user_delete(self, side: Side, item_id: str) -> None:
        self.user_deleted.add(self.store(side).items[item_id].origin)
        self.store(side).delete(item_id)

    def make_plan(self, policy: ConflictPolicy = ConflictPolicy.MOST_RECENT) -> tuple[Plan, int, int]:
        crm, crm_upto = self.crm.observe()
        outlook, outlook_upto = self.outlook.observe()
        result = plan(
            self.links.values(),
            crm,
            outlook,
            now=self.clock.now(),
            policy=policy,
            normalisation=NORMALISATION,
        )
        check_deletions_are_signalled(result, crm, outlook)
        return result, crm_upto, outlook_upto

    def sync(self, policy: ConflictPolicy = ConflictPolicy.MOST_RECENT, budget: int | None = None) -> Plan:
        """Observe, plan, apply; with ``budget``, crash after that many steps (raises Crash)."""
        result, crm_upto, outlook_upto = self.make_plan(policy)
        Applier(self, budget).apply(result)
        self.crm.consume(crm_upto)
        self.outlook.consume(outlook_upto)
        return result


@dataclass
class Applier:
    """Executes a plan on a ``World`` per the executor contract, one countable step at a time."""

    world: World
    budget: int | None = None

    def step(self) -> None:
        if self.budget is not None:
            if self.budget == 0:
                raise Crash
            self.budget -= 1

    def write_link(self, row: LinkRow) -> None:
        self.step()
        self.world.links[row.link_id] = row

    def apply(self, result: Plan) -> None:
        for action in result.actions:
            match action:
                case Create():
                    self.create(action)
                case Update():
                    self.update(action)
                case Delete():
                    self.delete(action)
                case Adopt() | Tombstone():
                    self.write_link(action.link)
                case Skip(link=LinkRow() as row):
                    self.write_link(row)
                case ForgetLink():
                    self.step()
                    del self.world.links[action.link_id]
                case RecordConflict():
                    self.step()
                    self.world.conflicts[action.conflict.conflict_id] = action

    def create(self, action: Create) -> None:
        target = self.world.store(action.side)
        source = self.world.store(action.side.other)
        self.write_link(action.pending)
        self.step()
        found = target.find_by_marker(action.marker) if action.recover else None
        if found is not None:
            version = target.write_update(found, action.fields)
            item_id = found
        else:
            origin = source.items[action.marker].origin if action.marker in source.items else action.marker
            item_id, _ = target.write_create(action.fields, action.marker, action.transaction_key, origin)
            version = target.write_update(item_id, action.fields)  # make sure it holds ``fields``
        self.write_link(action.completed(item_id, version))

    def update(self, action: Update) -> None:
        versions: dict[str, str] = {}
        for side in Side:
            patch = action.patch(side)
            if patch is not None:
                self.step()
                versions[f"{side}_version"] = self.world.store(side).write_update(patch.item_id, patch.fields)
        self.write_link(action.completed(**versions))

    def delete(self, action: Delete) -> None:
        target = self.world.store(action.side)
        item_id = action.item_id or (target.find_by_marker(action.marker) if action.marker else None)
        self.step()
        if item_id is not None and item_id in target.items:  # a 404 counts as done
            self.world.sync_deleted.add(target.items[item_id].origin)
            target.delete(item_id, ours=True)
        self.write_link(action.link)


def live_links(world: World) -> list[LinkRow]:
    return [row for row in world.links.values() if row.state is not LinkState.TOMBSTONE]
