"""Timer triggers as the host runs them: 6-field NCRONTAB (seconds first; day-of-month AND
day-of-week, as NCrontab does) or a TimeSpan, UTC unless WEBSITE_TIME_ZONE says otherwise,
``runOnStartup``, never two runs of one timer at once, no retry on failure, and
``past_due`` when an occurrence was missed."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from azure.functions.timer import TimerRequest
from croniter import croniter

from local.app_settings import resolve
from local.invocation import Invoker

log = logging.getLogger("Host.Timers")

_TIMESPAN = re.compile(r"^\d{1,2}:\d{2}:\d{2}$")


class Schedule:
    """When a timer fires next."""

    def __init__(self, expression: str, tz: tzinfo) -> None:
        self.expression = resolve(expression).strip()
        self._tz = tz
        self._interval: timedelta | None = None
        if _TIMESPAN.match(self.expression):
            h, m, s = (int(part) for part in self.expression.split(":"))
            self._interval = timedelta(hours=h, minutes=m, seconds=s)
            return
        fields = self.expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(f"timer schedule {expression!r} is neither NCRONTAB (5 or 6 fields) nor hh:mm:ss")
        self._six = len(fields) == 6
        if not croniter.is_valid(self.expression, second_at_beginning=self._six):
            raise ValueError(f"timer schedule {expression!r} is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        if self._interval is not None:
            return moment + self._interval
        local = moment.astimezone(self._tz)
        # day_or=False: NCrontab requires both day-of-month and day-of-week to match.
        it = croniter(self.expression, local, second_at_beginning=self._six, day_or=False)
        return it.get_next(datetime).astimezone(UTC)


def host_time_zone() -> tzinfo:
    name = os.environ.get("WEBSITE_TIME_ZONE")
    return ZoneInfo(name) if name else UTC


class TimerRunner:
    """Runs one timer function on its schedule in its own thread."""

    def __init__(self, invoker: Invoker, *, run_on_startup: bool = False) -> None:
        trigger = invoker.spec.trigger
        self._invoker = invoker
        self._schedule = Schedule(str(trigger["schedule"]), host_time_zone())
        self._run_on_startup = run_on_startup or bool(trigger.get("runOnStartup"))
        self._stop = threading.Event()
        self._running = threading.Lock()  # the listener's SemaphoreSlim(1,1): no overlap
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._loop, name=f"timer-{invoker.spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def fire(self, *, past_due: bool = False, reason: str = "Timer fired") -> None:
        """Run once now (also used by the admin endpoint); waits for a run in progress."""
        with self._running:
            now = datetime.now(UTC)
            request = TimerRequest(
                past_due=past_due,
                schedule_status={
                    "Last": (self._last or now).isoformat(),
                    "Next": self._schedule.next_after(now).isoformat(),
                    "LastUpdated": now.isoformat(),
                },
                schedule={"AdjustForDST": True},
            )
            self._last = now
            # A failed run is logged by the invoker and not retried: the next occurrence comes.
            with contextlib.suppress(Exception):
                self._invoker.invoke(request, reason=reason)

    def _loop(self) -> None:
        if self._run_on_startup and not self._stop.is_set():
            self.fire(reason="Timer fired at startup")
        due = self._schedule.next_after(datetime.now(UTC))
        past_due = False
        while not self._stop.is_set():
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0 and self._stop.wait(wait):
                break
            self.fire(past_due=past_due, reason=f"Timer fired at {due.isoformat()}")
            following = self._schedule.next_after(due)
            now = datetime.now(UTC)
            # A run that outlasted the next occurrence skips it; the next run is told it is late.
            past_due = following <= now
            due = self._schedule.next_after(now) if past_due else following
