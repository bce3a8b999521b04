"""The Outlook side of each kind (``shared.sync.kind.OutlookSide``): the Graph container
clients with what the sync steps read beyond the items, turned into what the engine sees by
the kind's pure rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import JsonValue

from shared.graph.calendars import CalendarClient
from shared.graph.contacts import ContactsClient
from shared.graph.errors import GraphError
from shared.graph.extended_properties import crm_id_of
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import OutlookItem
from shared.graph.sync_errors import ContainerGone, ItemNotFound
from shared.sync import calendar_mapping
from shared.sync.calendar_kind import DELTA_WINDOW_FUTURE, DELTA_WINDOW_PAST, CalendarRules
from shared.sync.changes import ItemSeen
from shared.sync.contacts_kind import ContactsRules


class ContactsOutlook(ContactsClient):
    """The member's "Zoho CRM Contacts" folder."""

    def __init__(self, mailbox: GraphMailbox, rules: ContactsRules) -> None:
        super().__init__(mailbox)
        self.rules = rules

    def seen(self, item: OutlookItem, instances: Sequence[Any] = ()) -> ItemSeen:
        return self.rules.outlook_to_seen(item.to_graph(), crm_id_of(item))

    def delta_pages(self, container_id: str, resume: str | None) -> Iterator[Any]:
        return self.delta(container_id, resume_from=resume)

    def read_series(self, container_id: str, master_ids: list[str]) -> tuple[list[ItemSeen], list[str]]:
        return [], []

    def after_write(self, container_id: str, item_id: str, before: Mapping[str, JsonValue] | None,
                    after: Mapping[str, JsonValue]) -> None:
        return None

    def outside_window(self, container_id: str) -> list[ItemSeen]:
        return []


class CalendarOutlook(CalendarClient):
    """The member's "Zoho CRM" calendar: events, series and the delta window."""

    def __init__(self, mailbox: GraphMailbox, rules: CalendarRules,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(mailbox)
        self.rules = rules
        self._now = clock

    def window(self) -> tuple[datetime, datetime]:
        now = self._now()
        return now - DELTA_WINDOW_PAST, now + DELTA_WINDOW_FUTURE

    def seen(self, item: OutlookItem, instances: Sequence[Any] = ()) -> ItemSeen:
        return self.rules.outlook_to_seen(item.to_graph(), crm_id_of(item), [i.to_graph() for i in instances])

    def delta_pages(self, container_id: str, resume: str | None) -> Iterator[Any]:
        if resume:
            return self.delta(container_id, resume_from=resume)
        start, end = self.window()
        return self.delta(container_id, start=start, end=end)

    def read_series(self, container_id: str, master_ids: list[str]) -> tuple[list[ItemSeen], list[str]]:
        seen: list[ItemSeen] = []
        gone: list[str] = []
        for master_id, item in zip(master_ids, self.get_items(container_id, master_ids), strict=True):
            if isinstance(item, ContainerGone):
                raise item
            if type(item) is ItemNotFound:
                gone.append(master_id)  # a confirmed 404: the series was deleted
            elif not isinstance(item, GraphError):  # another failure: read again next round
                instances = self.instances(master_id, *self.window()) if item.to_graph().get("recurrence") else []
                seen.append(self.seen(item, [i for i in instances if i.to_graph().get("type") == "exception"]))
        return seen, gone

    def after_write(self, container_id: str, item_id: str, before: Mapping[str, JsonValue] | None,
                    after: Mapping[str, JsonValue]) -> None:
        """Apply a series' exceptions Outlook's event body cannot carry: a cancelled occurrence
        is a DELETE of it, a moved one a PATCH of its times. (An occurrence cancelled in
        Outlook cannot be brought back there: Graph has no API for it.)"""
        changes = calendar_mapping.exception_changes(
            (before or {}).get(calendar_mapping.RECURRENCE), after.get(calendar_mapping.RECURRENCE)
        )
        if not changes.cancel and not changes.move:
            return
        when = after.get(calendar_mapping.WHEN)
        zone = when.get("time_zone") if isinstance(when, Mapping) else None

        def occurrence_on(text: str) -> Any:
            day = date.fromisoformat(text)
            for occurrence in self.occurrences_around(item_id, day):
                raw = occurrence.to_graph()
                if raw.get("originalStart") and calendar_mapping.graph_occurrence_date(raw, zone) == day:  # type: ignore[arg-type]
                    return occurrence
            return None

        for text in changes.cancel:
            if (found := occurrence_on(text)) is not None:
                self.cancel_occurrence(found.id)
        for exception in changes.move:
            if (found := occurrence_on(str(exception["original_date"]))) is not None:
                self.move_occurrence(found.id, calendar_mapping.graph_occurrence_times(exception, zone))  # type: ignore[arg-type]

    def outside_window(self, container_id: str) -> list[ItemSeen]:
        return [self.seen(e) for e in self.events_outside(container_id, *self.window())]
