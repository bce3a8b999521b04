"""Settings > Marketplace > Microsoft as rendered (issue 19): a conflict shows the field, both
values, which was kept (in words) and when; the section says what Enable does; the initial
sync shows its time left; hostile values stay text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from shared import paging
from shared.http_messages import WebRequest
from shared.sync.org_activity import KindActivity, MemberActivity, page_of
from shared.sync.profiles import SyncKind, SyncProfile, SyncState
from shared.web.pages import render
from shared.web.settings_pages import _section


def page(lang: str, *sections: dict) -> str:  # type: ignore[type-arg]
    request = WebRequest("GET", "https://app.example/api/settings/microsoft", {}, query={"lang": lang})
    body = render(request, "microsoft.html", sections=list(sections), known_reasons=set(), csrf_token="t", signed_in=True,
                  member_nav=True, answers={}, asked="").body
    return body.decode() if isinstance(body, bytes) else str(body)


NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def profile(**values: object) -> SyncProfile:
    return SyncProfile(partition_key="p", row_key="calendar", tenant_id="t", object_id="o", **values)


def test_a_conflict_shows_both_values_which_was_kept_and_when() -> None:
    conflict = {"kind": "same_field", "at": "2026-12-05 11:58 UTC", "deleted_on": None,
                "fields": [{"field": "Title:jobTitle", "crm": "Manager", "outlook": "<b>Director</b>", "winner": "crm"}]}
    section = _section(SyncKind.CONTACTS, profile(state=SyncState.ACTIVE, conflicts=1), [conflict], 10_000, NOW)
    english, french = page("en", section), page("fr", section)
    row = english.split("<tbody>")[1]
    assert all(text in row for text in ("2026-12-05 11:58 UTC", "<td>Title</td>", "Manager", "&lt;b&gt;Director&lt;/b&gt;", "The CRM&#39;s value"))
    assert "La valeur du CRM" in french and "jusqu'à 10\u202f000" in french.replace("&#39;", "'")
    assert "up to 10,000" in english


def test_the_initial_sync_shows_counts_and_time_left() -> None:
    running = profile(state=SyncState.INITIAL, enabled_at=NOW - timedelta(minutes=4), initial_done=100, initial_total=300)
    html = page("en", _section(SyncKind.CALENDAR, running, [], 5000, NOW))
    assert "100 / 300" in html and "about 8 min left" in html
    assert "environ 8 min restantes" in page("fr", _section(SyncKind.CALENDAR, running, [], 5000, NOW))


def activity_page(lang: str, rows: list, requested: str | None) -> str:  # type: ignore[type-arg]
    shown = page_of(rows, requested)
    request = WebRequest("GET", "https://app.example/api/settings/users/sync", {}, query={"lang": lang})
    body = render(request, "activity.html", org_name="Contoso <Ltd>", page=shown, rows=shown.rows, kinds=list(SyncKind),
                  notice="", csrf_token="t", signed_in=True, member_nav=True).body
    return body.decode() if isinstance(body, bytes) else str(body)


def test_sync_activity_of_a_big_org_says_where_everyone_stands_and_pages_through_them() -> None:
    def member(n: int, state: str) -> MemberActivity:
        kinds = {kind: KindActivity(state, None, None, None) for kind in SyncKind}
        return MemberActivity(f"u{n}", f"<i>Member</i> {n:04d}", f"m{n}@x.test", True, kinds)

    rows = [member(n, "paused") for n in range(2)] + [member(n, "active") for n in range(2, 1250)]
    first = activity_page("en", rows, None)
    assert first.count('data-testid="activity-row"') == 100 and "&lt;i&gt;Member&lt;/i&gt; 0000" in first
    assert "Paused: <strong>2</strong>" in first and "In sync: <strong>1,248</strong>" in first
    assert "Page 1 of 13" in first and 'href="?page=2" rel="next"' in first and 'rel="prev"' not in first
    last = activity_page("fr", rows, "13")
    assert last.count('data-testid="activity-row"') == 50 and "Page 13 sur 13" in last
    assert 'href="?page=12" rel="prev"' in last and 'rel="next"' not in last and "Synchronisé\u202f: <strong>1\u202f248</strong>" in last.replace("&#39;", "'")
    assert 'data-testid="activity-pages"' not in activity_page("en", rows[:100], None)  # one page: no navigation


def test_the_other_language_keeps_the_page_or_search_and_nothing_else() -> None:
    request = WebRequest("GET", "https://app.example/api/settings/users/sync", {},
                         query={"lang": "en", "page": "3", "why": "<Lunch & Learn>", "code": "secret-code", "state": "s"})
    body = render(request, "activity.html", org_name="O", page=page_of([], None), rows=[], kinds=list(SyncKind), notice="",
                  csrf_token="t", signed_in=True, member_nav=True).body
    html = body.decode() if isinstance(body, bytes) else str(body)
    assert 'href="/api/settings/users/sync?page=3&amp;why=%3CLunch+%26+Learn%3E&amp;lang=fr"' in html
    assert "secret-code" not in html and "state=" not in html


def users_page(query: dict[str, str], invitations: list, join_requests: list) -> str:  # type: ignore[type-arg]
    request = WebRequest("GET", "https://app.example/api/settings/users", {}, query={"lang": "en", **query})
    body = render(request, "users.html", org_name="O", notice="", members=paging.page_of([], None), undelivered={},
                  invitations=paging.page_of(invitations, query.get("invitations_page")),
                  join_requests=paging.page_of(join_requests, query.get("requests_page")),
                  csrf_token="t", signed_in=True, member_nav=True).body
    return body.decode() if isinstance(body, bytes) else str(body)


def test_the_users_page_pages_its_invitations_and_keeps_the_other_lists_pages_in_its_links() -> None:
    invitations = [SimpleNamespace(email=f"p{n}@x.test", state="pending", expires_at=NOW) for n in range(250)]
    requests = [(SimpleNamespace(name=f"R {n}", email=f"r{n}@x.test", created_at=NOW, decided_by=None, row_key=f"k{n}"), "pending")
                for n in range(150)]
    html = users_page({"page": "1", "requests_page": "2"}, invitations, requests)
    shown = html.split('data-testid="invitations"')[1].split("</table>")[0]
    assert shown.count("<tr>") == 1 + 100 and "p0@x.test" in shown and "p100@x.test" not in shown
    assert 'href="?page=1&amp;invitations_page=2&amp;requests_page=2" rel="next"' in html  # the requests' page kept
    assert 'href="?page=1&amp;invitations_page=1&amp;requests_page=1" rel="prev"' in html
    assert "Page 2 of 2" in html.split('data-testid="join-requests-pages"')[1]
