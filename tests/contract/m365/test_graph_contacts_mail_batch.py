"""Contact folders, contacts and their delta; sendMail; $batch; throttling and injected faults."""

from __future__ import annotations

import threading

MEGAN = "megan@contoso.test"


def test_contact_folder_and_contacts_with_delta(http, m365, app_headers):
    users = f"{m365.graph_url}/users/{MEGAN}"
    folder = http.post(f"{users}/contactFolders", headers=app_headers, json={"displayName": "Zoho CRM Contacts"}).json()
    base = f"{users}/contactFolders/{folder['id']}/contacts"
    created = http.post(base, headers=app_headers, json={
        "givenName": "Pavel", "surname": "Bansky", "emailAddresses": [{"address": "pavel@fabrikam.example", "name": "Pavel"}],
        "businessPhones": ["+1 732 555 0102"], "companyName": "Fabrikam"})
    assert created.status_code == 201 and created.json()["displayName"] == "Pavel Bansky"
    contact = created.json()
    assert http.post(base, headers=app_headers, json={"nickname": "x"}).status_code == 400  # not a contact property
    second = http.post(base, headers=app_headers, json={"givenName": "Ana"}).json()
    first = http.get(f"{base}/delta", headers=app_headers).json()
    assert [c["id"] for c in first["value"]] == [contact["id"], second["id"]]
    patched = http.patch(f"{base}/{contact['id']}", headers=app_headers, json={"jobTitle": "Buyer"}).json()
    assert patched["jobTitle"] == "Buyer" and patched["changeKey"] != contact["changeKey"]
    assert http.delete(f"{m365.base_url}/__emulator/mailbox/{MEGAN}/contacts/{second['id']}").status_code == 204
    changes = {c["id"]: c for c in http.get(first["@odata.deltaLink"], headers=app_headers).json()["value"]}
    assert changes[contact["id"]]["jobTitle"] == "Buyer"
    assert changes[second["id"]]["@removed"] == {"reason": "deleted"}
    folders_delta = http.get(f"{users}/contactFolders/delta", headers=app_headers).json()
    assert http.delete(f"{users}/contactFolders/{folder['id']}", headers=app_headers).status_code == 204
    removed = http.get(folders_delta["@odata.deltaLink"], headers=app_headers).json()["value"]
    assert removed == [{"@odata.type": "#microsoft.graph.contactFolder", "id": folder["id"], "@removed": {"reason": "deleted"}}]
    assert http.get(f"{base}/{contact['id']}", headers=app_headers).json()["error"]["code"] == "ErrorItemNotFound"
    default_contacts = http.get(f"{users}/contacts", headers=app_headers).json()["value"]
    assert len(default_contacts) == 2  # the default folder is never touched


def test_send_mail_lands_in_inbox_newest_first_and_sent_items(http, m365, app_headers):
    for subject in ("First", "Second"):
        response = http.post(f"{m365.graph_url}/users/adele@contoso.test/sendMail", headers=app_headers, json={
            "message": {"subject": subject, "body": {"contentType": "HTML", "content": "<a href='http://x.test/join'>Join</a>"},
                        "toRecipients": [{"emailAddress": {"address": "megan@contoso.test"}}, {"emailAddress": {"address": "x@elsewhere.example"}}]}})
        assert response.status_code == 202 and response.content == b""
    snap = http.get(f"{m365.base_url}/__emulator/snapshot").json()
    users = {u["userPrincipalName"]: u for t in snap["tenants"] for u in t["users"]}
    inbox = [m for m in users[MEGAN]["mailbox"]["messages"] if m["parentFolderId"] == "inbox"]
    assert [m["subject"] for m in inbox] == ["Second", "First"]
    assert len([m for m in users["adele@contoso.test"]["mailbox"]["messages"] if m["parentFolderId"] == "sentitems"]) == 2
    page = http.get(f"{m365.base_url}/__emulator/mailbox/{MEGAN}").text
    assert "<a href='http://x.test/join'>" in page
    # Reading mail needs Mail.Read, which the product's app does not hold.
    assert http.get(f"{m365.graph_url}/users/{MEGAN}/messages", headers=app_headers).status_code == 403
    http.post(f"{m365.base_url}/__emulator/apps", json={"clientId": "11111111-2222-3333-4444-555555555555", "clientSecrets": ["s"],
                                                        "requiredApplicationPermissions": ["Mail.Read"]}).raise_for_status()
    http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c",
                                                            "clientId": "11111111-2222-3333-4444-555555555555"}).raise_for_status()
    token = http.post(f"{m365.base_url}/contoso.test/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": "11111111-2222-3333-4444-555555555555", "client_secret": "s",
        "scope": "https://graph.microsoft.com/.default"}).json()["access_token"]
    inbox = http.get(f"{m365.graph_url}/users/{MEGAN}/mailFolders/inbox/messages", headers={"Authorization": f"Bearer {token}"}).json()
    assert [m["subject"] for m in inbox["value"]] == ["Second", "First"] and "Join" in inbox["value"][0]["body"]["content"]


def test_batch_limits_depends_on_and_items(http, raw_http, m365, app_headers):
    url = f"{m365.graph_url}/$batch"
    items = [{"id": str(i), "method": "GET", "url": f"/users/{MEGAN}/calendars"} for i in range(21)]
    too_many = raw_http.post(url, headers=app_headers, json={"requests": items})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "BadRequest"
    batch = http.post(url, headers=app_headers, json={"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{MEGAN}/calendars/nope"},
        {"id": "2", "method": "GET", "url": f"/users/{MEGAN}/calendars", "dependsOn": ["1"]},
        {"id": "3", "method": "POST", "url": f"/users/{MEGAN}/contactFolders", "headers": {"Content-Type": "application/json"},
         "body": {"displayName": "Batch folder"}},
    ]})
    assert batch.status_code == 200
    status = {r["id"]: r["status"] for r in batch.json()["responses"]}
    assert status == {"1": 404, "2": 424, "3": 201}


def test_concurrency_throttling_429_with_retry_after(http, m365, app_headers):
    http.put(f"{m365.base_url}/__emulator/faults", json={"latency_ms": 400}).raise_for_status()
    results: list = []
    barrier = threading.Barrier(8)

    def call():
        barrier.wait()
        results.append(http.get(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throttled = [r for r in results if r.status_code == 429]
    assert throttled and len(results) - len(throttled) <= 4
    assert all(r.headers["Retry-After"] and r.json()["error"]["code"] == "ApplicationThrottled" for r in throttled)
    counters = http.get(f"{m365.base_url}/__emulator/counters").json()["mailboxes"][MEGAN]
    assert counters["total"] == 8 and counters["concurrentPeak"] == 4 and counters["throttled429"] == len(throttled)
    # A batch of 8 items runs at most 4 at a time: no item of a lone batch is throttled.
    http.put(f"{m365.base_url}/__emulator/faults", json={"latency_ms": 100}).raise_for_status()
    batch = http.post(f"{m365.graph_url}/$batch", headers=app_headers, json={"requests": [
        {"id": str(i), "method": "GET", "url": f"/users/{MEGAN}/calendars"} for i in range(8)]}).json()
    assert {r["status"] for r in batch["responses"]} == {200}


def test_injected_faults_and_throttled_batch_item(http, m365, app_headers):
    http.put(f"{m365.base_url}/__emulator/faults", json={"rate_429": 1.0, "retry_after_seconds": 7}).raise_for_status()
    response = http.get(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers)
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    batch = http.post(f"{m365.graph_url}/$batch", headers=app_headers, json={"requests": [
        {"id": "a", "method": "GET", "url": f"/users/{MEGAN}/calendars"}]})
    assert batch.status_code == 200
    item = batch.json()["responses"][0]
    assert item["status"] == 429 and item["headers"]["Retry-After"] == "7"
    http.put(f"{m365.base_url}/__emulator/faults", json={"per_mailbox": {MEGAN: {"rate_503": 1.0}}}).raise_for_status()
    assert http.get(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers).status_code == 503
    assert http.get(f"{m365.graph_url}/users/alex@contoso.test/calendars", headers=app_headers).status_code == 200
    http.put(f"{m365.base_url}/__emulator/faults", json={"mailbox_requests_per_10_minutes": 2}).raise_for_status()
    http.post(f"{m365.base_url}/__emulator/counters/reset")
    codes = [http.get(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
