"""Settings > Marketplace > Microsoft (SPEC R3.1, R3.7, R4.1, R4.8): the Calendar and
Contacts sections with Enable / Disable and the sync status; and ``GET /api/sync/status``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from shared.accounts.models import MemberIdentity
from shared.graph.sync_errors import ContainerNameTaken
from shared.http_messages import WebRequest, WebResponse
from shared.sync.adapters import LABELS
from shared.sync.initial_progress import as_seen
from shared.sync.ledger import ConflictFact, Explanation, explain
from shared.sync.lifecycle import RESUMABLE, Reason
from shared.sync.profiles import SyncKind, SyncProfile, SyncState
from shared.sync.service import NothingToResolve
from shared.sync.step_failures import NothingToResume
from shared.web.i18n import TEXTS
from shared.web.pages import message, render
from shared.web.visit import Visit
from shared.wiring import Services

log = logging.getLogger(__name__)

# enable / disable (R3.1, R3.7, R4.1, R4.8); the answers to a paused mass change (issue 7).
ACTIONS = ("enable", "disable", "confirm-deletions", "restore-deletions", "resume")

MAX_QUESTION = 200  # characters of a "Why isn't it synced?" search
MAX_CONFLICTS_READ = 500

class SettingsPages:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.base = services.settings.public_base_url

    def _member(self, visit: Visit) -> MemberIdentity:
        return visit.member(self.s.accounts)

    def status(self, member: MemberIdentity) -> list[dict[str, Any]]:
        sections = []
        caps = {SyncKind.CALENDAR: self.s.settings.calendar_initial_cap, SyncKind.CONTACTS: self.s.settings.contacts_initial_cap}
        now = datetime.now(UTC)
        for kind in SyncKind:
            stored = self.s.sync_profiles.get(member.partition_key, kind)
            profile = stored.entity if stored else None
            if profile is not None:
                profile = as_seen(profile, self.s.sync_links.progress)
            sections.append(_section(kind, profile, self._conflicts(member, kind, profile), caps[kind], now))
        return sections

    def _conflicts(self, member: MemberIdentity, kind: SyncKind, profile: SyncProfile | None) -> list[dict[str, Any]]:
        if profile is None or profile.conflicts == 0:
            return []
        rows = self.s.sync_conflicts.recent(f"{member.partition_key}|{kind.value}", limit=5)
        return [{"kind": r.kind, "fields": r.fields, "at": r.detected_at.strftime("%Y-%m-%d %H:%M UTC"),
                 "deleted_on": r.deleted_on} for r in rows]

    def why(self, member: MemberIdentity, kind: SyncKind, query: str) -> list[Explanation]:
        """The sync ledger's answer: why each of the member's items named like ``query`` is,
        or is not, on the other side (``shared.sync.ledger``)."""
        stored = self.s.sync_profiles.get(member.partition_key, kind)
        if stored is None:
            return []
        profile = stored.entity
        links = self.s.sync_links.all(profile.links_partition) if profile.state is not SyncState.DISABLED else []
        conflicts = [ConflictFact(r.crm_id, r.outlook_id, r.detected_at, r.fields, r.deleted_on)
                     for r in self.s.sync_conflicts.recent(profile.history_partition, limit=MAX_CONFLICTS_READ)]
        return explain(links, self.s.sync_ledger.notes(profile.history_partition), conflicts, LABELS[kind], query)

    def _question(self, request: WebRequest) -> tuple[SyncKind, str] | None:
        """``?why=<name>&kind=calendar|contacts``: a "Why isn't it synced?" question, if asked."""
        if "why" not in request.query:
            return None
        kind = request.query.get("kind", SyncKind.CALENDAR.value)
        return (SyncKind(kind), request.query["why"][:MAX_QUESTION]) if kind in {k.value for k in SyncKind} else None

    def page(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        known = {key for key in TEXTS["en"] if key.startswith("ms.reason.")}
        question = self._question(request)
        answers = {question[0].value: self.why(member, *question)} if question else {}
        return visit.answer(render(request, "microsoft.html", sections=self.status(member), known_reasons=known,
                                   csrf_token=visit.session.csrf_token, signed_in=True, member_nav=True, answers=answers,
                                   asked=question[1] if question else ""))

    def status_json(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        body: dict[str, Any] = {"member": member.email, "sync": self.status(member)}
        question = self._question(request)
        if question is None and "why" in request.query:
            return visit.answer(WebResponse.json({"error": "bad_kind", "message": "kind must be calendar or contacts"},
                                                 status=400))
        if question is not None:
            body["why"] = {"kind": question[0].value, "query": question[1],
                           "items": [e.model_dump(mode="json") for e in self.why(member, *question)]}
        return visit.answer(WebResponse.json(body))

    def change(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        visit.require_form(self.base)
        kind_name, action = request.route.get("kind", ""), request.route.get("action", "")
        if kind_name not in ("calendar", "contacts") or action not in ACTIONS:
            return visit.answer(message(request, "notfound.title", "error.body", status=404))
        kind = SyncKind(kind_name)
        if action == "enable":
            try:
                self.s.sync.enable(member, kind)
            except ContainerNameTaken as taken:
                # The member's own calendar or folder of that name: never adopted (Disable would
                # delete it with everything in it); they rename or remove it, then Enable again.
                log.info("enable refused: %s", taken)
                return visit.answer(message(request, f"ms.name_taken.{kind.value}.title", f"ms.name_taken.{kind.value}.body",
                                            status=409, name=taken.name))
        elif action == "disable":
            self.s.sync.disable(member, kind)
        elif action == "resume":
            try:
                self.s.sync.resume(member, kind)
            except NothingToResume:
                # Resumed already (a second click, another tab), or nothing stopped it.
                return visit.answer(message(request, "ms.resume.gone.title", "ms.resume.gone.body", status=409))
        else:
            try:
                self.s.sync.resolve_mass_change(member, kind, confirm=action == "confirm-deletions")
            except NothingToResolve:
                # Answered already (a second click, another tab): the page shows where things stand.
                return visit.answer(message(request, "ms.mass.gone.title", "ms.mass.gone.body", status=409))
        return visit.answer(WebResponse.redirect(f"{self.base}/api/settings/microsoft"))


def time_left(profile: SyncProfile | None, now: datetime) -> int | None:
    """Whole minutes the initial sync still needs at the pace it has kept since Enable (and
    after the wait for the mailbox's 10-minute window, when its last step stopped for it);
    None before anything was sent (no pace yet)."""
    if profile is None or profile.state is not SyncState.INITIAL or not profile.initial_done or not profile.enabled_at:
        return None
    elapsed = max((now - profile.enabled_at).total_seconds(), 0.0)
    remaining = max(profile.initial_total - profile.initial_done, 0)
    waiting = max((profile.initial_resume_at - now).total_seconds(), 0.0) if profile.initial_resume_at else 0.0
    return int((waiting + elapsed / profile.initial_done * remaining) // 60)


def _section(kind: SyncKind, profile: SyncProfile | None, conflicts: list[dict[str, Any]], cap: int,
             now: datetime) -> dict[str, Any]:
    state = profile.state if profile else SyncState.DISABLED
    return {
        "kind": kind.value,
        "cap": cap,
        "eta_minutes": time_left(profile, now),
        "state": state.value,
        "reason": profile.reason.value if profile and profile.reason and profile.reason is not Reason.DISABLED_BY_MEMBER else None,
        "done": profile.initial_done if profile else 0,
        "total": profile.initial_total if profile else 0,
        "synced": profile.synced_items if profile else 0,
        "last_sync": profile.last_sync_at.strftime("%Y-%m-%d %H:%M:%S UTC") if profile and profile.last_sync_at else None,
        "conflicts": profile.conflicts if profile else 0,
        "errors": profile.errors if profile else 0,
        "last_error": profile.last_error if profile else None,
        "recent_conflicts": conflicts,
        "pending_deletions": profile.pending_deletions if profile else 0,
        "mass_change": bool(profile and state is SyncState.PAUSED and profile.reason is Reason.MASS_CHANGE),
        "resumable": bool(profile and state is SyncState.PAUSED and profile.reason in RESUMABLE),
    }
