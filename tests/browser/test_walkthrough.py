"""The product as people meet it (issue 19), by clicks alone, in English and in French: from
the Office 365 app launcher's entry through the install to the CRM's home; from there, the
CRM's Setup menu to Users, Add User with a search by full name and by e-mail address; the
header to Microsoft, Enable, the initial sync's progress to done, "Why isn't it synced?",
the admin's Sync activity, the contacts Configuration window at common widths and by
keyboard, and Disable. Every page of ours on the way passes axe-core and leaves its
screenshot in docs/screens/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.web.i18n import translate
from tests.browser.page_audit import SCREENS, audit
from tests.browser.test_settings import SYNC_TIMEOUT_MS, expect
from tests.browser.test_users import open_mail
from tests.integration.sync_setup import crm_control
from tests.product_stack import CONTOSO_PASSWORD, ProductStack, microsoft_sign_in

pytestmark = pytest.mark.browser
ADELE = "adele@contoso.test"
OWN_EVENTS = 6
WIDTHS = (1280, 1024, 768, 390)  # desktop, laptop, tablet, phone


def _event(title: str, days: int) -> dict[str, Any]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return {"Event_Title": title, "Start_DateTime": start.isoformat(), "End_DateTime": (start + timedelta(hours=1)).isoformat(),
            "All_day": False}


def person_speaking(browser: Any, lang: str) -> Any:
    context = browser.new_context(locale="fr-FR" if lang == "fr" else "en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    return context.new_page()


def install_by_clicks(product: ProductStack, page: Any, lang: str) -> None:
    """The app launcher's entry, Microsoft's sign-in and consent, our terms: the CRM's home."""
    page.goto(f"{product.url}/api/marketplace/launch")
    microsoft_sign_in(page, ADELE, CONTOSO_PASSWORD)
    page.get_by_role("button", name="Accept").click()
    page.get_by_label(translate(lang, "accounts.terms")).wait_for(timeout=20_000)
    audit(page, "install-terms", lang)
    page.get_by_label(translate(lang, "accounts.terms")).check()
    page.get_by_role("button", name=translate(lang, "accounts.continue")).click()
    expect()(page.get_by_test_id("crm-user")).to_have_text("Adele Vance")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_an_admin_walks_the_product_by_clicks_alone(product: ProductStack, trusting_browser: Any, lang: str) -> None:
    def t(key: str, **values: str) -> str:
        return translate(lang, key, **values)

    page = person_speaking(trusting_browser, lang)
    context = page.context
    try:
        install_by_clicks(product, page, lang)

        # The CRM's Setup menu > Users & Control > Users.
        page.get_by_text("Setup", exact=True).click()
        page.screenshot(path=str(SCREENS / f"crm-home-setup.{lang}.png"))  # the CRM's page: no audit of ours
        page.get_by_role("navigation", name="Setup").get_by_role("link", name="Users").click()
        expect()(page.get_by_role("heading", name=t("users.title"), exact=True)).to_be_visible()
        audit(page, "users", lang)

        # Add User: the tenant's people by name, found by full name and by e-mail address.
        page.get_by_role("link", name=t("users.office365")).click()
        expect()(page.get_by_role("heading", name=t("adduser.title"))).to_be_visible()
        first = [n.strip() for n in page.locator("tbody td:nth-child(2)").all_inner_texts()]
        assert first == sorted(first, key=str.lower) and "Adele Vance" in first and "Megan Bowen" not in first
        expect()(page.get_by_test_id("found")).to_have_text(t("adduser.found", count="30"))
        audit(page, "add-user", lang)
        page.get_by_role("link", name=t("adduser.next")).click()
        second = [n.strip() for n in page.locator("tbody td:nth-child(2)").all_inner_texts()]
        assert "Megan Bowen" in second and second == sorted(second, key=str.lower) and second[0].lower() > first[-1].lower()
        for query in ("Megan Bowen", "megan@contoso.test"):
            page.get_by_label(t("adduser.search")).fill(query)
            page.get_by_role("button", name=t("adduser.search.button"), exact=True).click()
            expect()(page.get_by_test_id("found")).to_have_text(t("adduser.found.one"))
            assert [n.strip() for n in page.locator("tbody td:nth-child(2)").all_inner_texts()] == ["Megan Bowen"]
        audit(page, "add-user-search", lang)
        page.get_by_label("Megan Bowen").first.check()
        page.get_by_role("button", name=t("users.save")).click()
        expect()(page.get_by_text(t("invite.result.invited"))).to_be_visible()
        audit(page, "invite-result", lang)

        # Microsoft, from our header: what Enable does, Enable, the progress to done.
        for number in range(OWN_EVENTS):
            crm_control(product, "actions/create", {"actor": ADELE, "module": "Events", "record": _event(f"Visit {number}", number + 1)})
        crm_control(product, "actions/import", {"actor": ADELE, "module": "Events", "records": [_event("Imported webinar", 2)]})
        page.get_by_role("navigation", name=t("nav.label")).get_by_role("link", name=t("nav.microsoft")).click()
        calendar = page.get_by_test_id("sync-calendar")
        expect()(calendar.get_by_test_id("calendar-what")).to_contain_text("5,000" if lang == "en" else "5\u202f000")
        audit(page, "microsoft", lang)
        page.get_by_role("button", name=f"{t('ms.enable')} {t('ms.calendar')}").click()
        expect()(page.get_by_test_id("calendar-state")).to_have_text(t("ms.state.active"), timeout=SYNC_TIMEOUT_MS)
        expect()(page.get_by_test_id("calendar-counts")).to_have_text(f"{OWN_EVENTS} / {OWN_EVENTS}")
        expect()(page.get_by_test_id("calendar-synced")).to_have_text(str(OWN_EVENTS))
        audit(page, "microsoft-in-sync", lang)

        # "Why isn't it synced?": the imported event, and why.
        calendar = page.get_by_test_id("sync-calendar")
        calendar.get_by_label(t("ms.why.label")).fill("Imported webinar")
        calendar.get_by_role("button", name=t("ms.why.search")).click()
        expect()(page.get_by_test_id("calendar-why-answers")).to_contain_text(t("ms.why.imported"))
        audit(page, "why-not-synced", lang)

        # The admin's view: every member's sync.
        page.get_by_role("link", name=t("nav.activity")).click()
        adele = page.get_by_test_id("activity-row").filter(has_text=ADELE)
        expect()(adele.locator("td[data-kind=calendar]")).to_contain_text(t("ms.state.active"))
        expect()(adele.locator("td[data-kind=contacts]")).to_contain_text(t("ms.state.disabled"))
        audit(page, "sync-activity", lang)

        # The contacts Configuration window: inside its card at common widths, and by keyboard.
        page.get_by_role("link", name=t("nav.microsoft")).click()
        page.get_by_role("link", name=t("mapping.open")).click()
        expect()(page.get_by_role("heading", name=t("mapping.title"))).to_be_visible()
        audit(page, "contacts-configuration", lang)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            card = page.locator("#mapping-form").bounding_box()
            for box in (b.bounding_box() for b in page.locator("button[data-remove], #pairs select").all()):
                assert box and card and box["x"] >= card["x"] and box["x"] + box["width"] <= card["x"] + card["width"] + 0.5, \
                    f"at {width} px a control leaves its card: {box} outside {card}"
        page.set_viewport_size({"width": 1280, "height": 900})
        rows = page.locator("#pairs tr").count()
        page.locator("button[data-remove]").first.focus()
        page.keyboard.press("Enter")
        expect()(page.locator("#pairs tr")).to_have_count(rows - 1)
        assert page.evaluate("document.activeElement.hasAttribute('data-remove')"), "focus left the pairs after Remove"
        page.get_by_role("link", name=re.compile(re.escape(t("ms.title")))).first.click()

        # Disable: the calendar goes, the CRM keeps everything.
        page.get_by_role("button", name=f"{t('ms.disable')} {t('ms.calendar')}").click()
        expect()(page.get_by_test_id("calendar-state")).to_have_text(t("ms.state.disabled"))
    finally:
        context.close()

    # Megan, invited above, opens her e-mail: the invitation's page.
    megan = person_speaking(trusting_browser, lang)
    try:
        open_mail(product, megan, "megan@contoso.test", "invited you to Zoho CRM", "Accept the invitation")
        audit(megan, "invitation", lang)
    finally:
        megan.context.close()


def test_the_audit_fails_a_page_with_a_serious_violation(trusting_browser: Any) -> None:
    """The audit can fail: an unlabelled field and an image without text are what axe-core
    calls critical, and the audit names them."""
    page = trusting_browser.new_page()
    try:
        page.set_content('<html lang="en"><head><title>t</title></head><body><main><h1>Form</h1>'
                         '<input type="text"><img src="data:,"></main></body></html>')
        with pytest.raises(AssertionError, match=r"critical (label|image-alt)"):
            audit(page, "self-test", "en", keep_screenshot=False)
    finally:
        page.close()


MAIL = {  # (subject part, link) of the e-mails, in the language they were asked in
    "invitation": {"en": ("invited you to Zoho CRM", "Accept the invitation"), "fr": ("vous invite", "Accepter l'invitation")},
    "join_request": {"en": ("asks to join", "Review the request"), "fr": ("demande à rejoindre", "Examiner la demande")},
}


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_pages_people_reach_from_an_email_pass_the_audit(product: ProductStack, trusting_browser: Any, lang: str) -> None:
    """The pages off the admin's walk: New User's invitation (someone outside Office 365), a
    request to join and its pending page, the approval, a link that cannot work."""
    def t(key: str, **values: str) -> str:
        return translate(lang, key, **values)

    adele, lina, diego = (person_speaking(trusting_browser, lang) for _ in range(3))
    try:
        install_by_clicks(product, adele, lang)
        adele.goto(f"{product.url}/api/settings/users")
        adele.get_by_text(t("users.new"), exact=True).click()
        adele.get_by_label(t("users.email"), exact=True).fill("lina.martel@independent.example")
        adele.get_by_label(t("users.first_name"), exact=True).fill("Lina")
        adele.get_by_label(t("users.last_name"), exact=True).fill("Martel")
        adele.get_by_role("button", name=t("users.save")).click()
        open_mail(product, lina, "lina.martel@independent.example", *MAIL["invitation"][lang])
        expect()(lina.get_by_role("button", name=t("invitation.choice.crm.button"))).to_be_visible()
        audit(lina, "invitation-choice", lang)

        diego.goto(f"{product.url}/api/marketplace/launch")
        microsoft_sign_in(diego, "diego@contoso.test", CONTOSO_PASSWORD)
        diego.get_by_label(t("accounts.terms")).check()
        diego.get_by_role("button", name=t("accounts.continue")).click()
        expect()(diego.get_by_role("button", name=t("join.request"))).to_be_visible()
        audit(diego, "join", lang)
        diego.get_by_role("button", name=t("join.request")).click()
        expect()(diego.get_by_role("heading", name=t("join.sent.title"))).to_be_visible()
        audit(diego, "join-sent", lang)
        diego.goto(f"{product.url}/api/marketplace/launch")  # the app again, from the launcher
        diego.get_by_label(t("accounts.terms")).check()
        diego.get_by_role("button", name=t("accounts.continue")).click()
        expect()(diego.get_by_role("heading", name=t("join.pending.title"))).to_be_visible()
        audit(diego, "join-pending", lang)

        open_mail(product, adele, ADELE, *MAIL["join_request"][lang])
        expect()(adele.get_by_role("button", name=t("approve.button"))).to_be_visible()
        audit(adele, "approve", lang)
        adele.goto(f"{product.url}/api/invitations/not-a-real-link")
        expect()(adele.get_by_role("heading", name=t("link.title"))).to_be_visible()
        audit(adele, "link-refused", lang)
    finally:
        for page in (adele, lina, diego):
            page.context.close()
