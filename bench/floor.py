"""The floor: a bare script that makes only the calls that cannot be avoided, against the same
emulators, with the same bodies the product sends. It never imports the product (``shared``).

    python -m bench.floor initial   < job.json   # CRM page reads of 200 -> Graph $batch creates of 20
    python -m bench.floor propagate < job.json   # webhooks in, one read and one write per change

``initial``: for each mailbox, one reader walks the member's CRM records in pages of 200
(``page`` 1..10, then ``page_token``), and one writer sends ``$batch``es of 20 creates, one
batch in flight per mailbox: Graph runs a batch's items four at a time, so that is the
mailbox's limit of 4 concurrent requests. Items answered 429 or 503 are sent again after
their Retry-After. Prints one JSON line: wall time, progress samples, peak memory.

``propagate``: creates its own CRM org and calendar, ``pairs`` linked events, a Graph
subscription and a CRM watch channel, prints ``READY {json}`` and then mirrors each change:
an Outlook change -> GET the event, PUT the CRM record; a CRM change -> the callback's
affected values -> PATCH the event. Its own echoes are recognised without a call (the
notification's etag, the callback's values). Stops on SIGTERM.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests

PROPERTY_SET = "{8d3b2f4e-6c1a-4e7b-9f25-0a4c7e91b3d6}"  # the product's, so the bodies weigh the same
CRM_ID = f"String {PROPERTY_SET} Name CrmId"
EVENT_FIELDS = ("Event_Title,Start_DateTime,End_DateTime,All_day,Venue,Description,Participants,Remind_At,"
                "Recurring_Activity,Modified_Time,Data_Source,Owner,Outlook_Id")
CONTACT_FIELDS = ("First_Name,Last_Name,Salutation,Email,Secondary_Email,Phone,Other_Phone,Mobile,Home_Phone,Title,"
                  "Department,Account_Name,Assistant,Reporting_To,Mailing_Street,Mailing_City,Mailing_State,Mailing_Zip,"
                  "Mailing_Country,Other_Street,Other_City,Other_State,Other_Zip,Other_Country,Date_of_Birth,Description,"
                  "Skype_ID,Modified_Time,Data_Source,Owner,Outlook_Id")
CAPS = {"calendar": 5000, "contacts": 10_000}
PER_PAGE, BATCH = 200, 20
NAMESPACE = uuid.UUID("6f1c2a9e-0d4b-4c1e-9a57-3b8e2f6d4c10")


def peak_memory_mb() -> float | None:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return round(int(match.group(1)) / 1024, 1) if match else None


def session(ca: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    if ca:
        s.verify = ca
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=32)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


# ---- tokens --------------------------------------------------------------------------------------
def graph_token(job: dict[str, Any], tenant: str, http: requests.Session) -> str:
    response = http.post(f"{job['login']}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": job["client_id"], "client_secret": job["client_secret"],
        "scope": "https://graph.microsoft.com/.default"}, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def crm_grant(job: dict[str, Any], user_id: str, http: requests.Session) -> tuple[str, str]:
    response = http.post(f"{job['crm_provisioning']}/users/{user_id}/grant", json={},
                         auth=(job["crm_client_id"], job["crm_client_secret"]), timeout=30)
    response.raise_for_status()
    body = response.json()
    return str(body["access_token"]), str(body["api_domain"])


# ---- bodies (as the product writes them) ---------------------------------------------------------
def utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def event_body(record: dict[str, Any], calendar_id: str) -> dict[str, Any]:
    return {
        "subject": record.get("Event_Title") or "", "body": {"contentType": "html", "content": record.get("Description") or ""},
        "location": {"displayName": record.get("Venue") or ""},
        "start": {"dateTime": utc(record["Start_DateTime"]), "timeZone": "UTC"},
        "end": {"dateTime": utc(record["End_DateTime"]), "timeZone": "UTC"},
        "isAllDay": bool(record.get("All_day")), "isReminderOn": False, "recurrence": None,
        "singleValueExtendedProperties": [{"id": CRM_ID, "value": str(record["id"])}],
        "transactionId": str(uuid.uuid5(NAMESPACE, f"{calendar_id}/{record['id']}")),
    }


def contact_body(record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"givenName": record.get("First_Name"), "surname": record.get("Last_Name")}
    if record.get("Email"):
        body["emailAddresses"] = [{"name": record["Email"], "address": record["Email"]}]
    if record.get("Phone"):
        body["businessPhones"] = [record["Phone"]]
    body["singleValueExtendedProperties"] = [{"id": CRM_ID, "value": str(record["id"])}]
    return {k: v for k, v in body.items() if v is not None}


# ---- initial -------------------------------------------------------------------------------------
class Mailbox:
    """One member: read their CRM records, write them into one fresh container of a mailbox."""

    def __init__(self, job: dict[str, Any], spec: dict[str, Any], started: float) -> None:
        self.job, self.spec, self.kind, self.started = job, spec, job["kind"], started
        self.graph = session(job.get("ca"))
        self.crm = session()
        self.pending: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=2000)  # streamed, never all held
        self.done = 0
        self.failed = 0
        self.retried = 0
        self.finished_at: float | None = None
        self.progress: list[tuple[float, int]] = [(0.0, 0)]

    def run(self) -> None:
        token = graph_token(self.job, self.spec["tenant"], self.graph)
        self.graph.headers["Authorization"] = f"Bearer {token}"
        crm_token, api = crm_grant(self.job, self.spec["crm_user_id"], self.crm)
        self.crm.headers["Authorization"] = f"Zoho-oauthtoken {crm_token}"
        self.api = f"{api}/crm/v8"
        self.container = self._container()
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        self._write()
        reader.join()
        self.finished_at = time.monotonic() - self.started

    def _user_path(self) -> str:
        return f"/users/{self.spec['user_id']}"

    def _container(self) -> str:
        collection, name_field = ("calendars", "name") if self.kind == "calendar" else ("contactFolders", "displayName")
        body = {name_field: f"Floor {uuid.uuid4().hex[:6]}"}
        for _ in range(20):
            response = self.graph.post(f"{self.job['graph']}{self._user_path()}/{collection}", json=body, timeout=60)
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return str(response.json()["id"])
        raise RuntimeError("could not create the floor's container")

    def _crm_get(self, params: dict[str, str]) -> requests.Response:
        module = "Events" if self.kind == "calendar" else "Contacts"
        for attempt in range(30):
            response = self.crm.get(f"{self.api}/{module}", params=params, timeout=60)
            if response.status_code in (429, 500, 503):
                time.sleep(min(0.2 * 2 ** attempt, 5))
                continue
            return response
        raise RuntimeError("CRM kept refusing")

    def _read(self) -> None:
        fields = EVENT_FIELDS if self.kind == "calendar" else CONTACT_FIELDS
        cap, sent, page, token = CAPS[self.kind], 0, 1, None
        try:
            while sent < cap:
                params = {"fields": fields, "per_page": str(PER_PAGE)}
                if token:
                    params["page_token"] = token
                else:
                    params["page"] = str(page)
                response = self._crm_get(params)
                if response.status_code == 204:
                    break
                response.raise_for_status()
                body = response.json()
                for record in body.get("data") or []:
                    if sent >= cap:
                        break
                    if (record.get("Owner") or {}).get("id") != self.spec["crm_user_id"]:
                        continue
                    if record.get("Data_Source") in ("Import", "Migration"):
                        continue
                    self.pending.put(record)
                    sent += 1
                info = body.get("info") or {}
                if not info.get("more_records"):
                    break
                page += 1
                if page > 10 or info.get("next_page_token"):
                    token = info.get("next_page_token")
        finally:
            self.pending.put(None)

    def _item(self, index: int, record: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "calendar":
            url, body = f"{self._user_path()}/calendars/{self.container}/events", event_body(record, self.container)
            headers = {"Content-Type": "application/json", "Prefer": 'outlook.timezone="UTC", IdType="ImmutableId"'}
        else:
            url, body = f"{self._user_path()}/contactFolders/{self.container}/contacts", contact_body(record)
            headers = {"Content-Type": "application/json", "Prefer": 'IdType="ImmutableId"'}
        return {"id": str(index), "method": "POST", "url": url, "body": body, "headers": headers}

    def _write(self) -> None:
        batch: list[dict[str, Any]] = []
        ended = False
        while not ended or batch:
            while not ended and len(batch) < BATCH:
                record = self.pending.get()
                if record is None:
                    ended = True
                    break
                batch.append(self._item(len(batch), record))
            if not batch:
                break
            batch = self._send(batch)

    def _send(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; return the items to send again (throttled or unavailable), renumbered."""
        response = self.graph.post(f"{self.job['graph']}/$batch", json={"requests": items}, timeout=300)
        if response.status_code != 200:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            self.retried += len(items)
            return items
        again, wait = [], 0.0
        by_id = {item["id"]: item for item in items}
        for answer in response.json()["responses"]:
            status = int(answer["status"])
            if status in (429, 503):
                again.append(by_id[answer["id"]])
                wait = max(wait, float((answer.get("headers") or {}).get("Retry-After", "1")))
            elif status < 300:
                self.done += 1
            else:
                self.failed += 1
        self.progress.append((round(time.monotonic() - self.started, 3), self.done))
        if again:
            self.retried += len(again)
            time.sleep(wait)
        return [{**item, "id": str(n)} for n, item in enumerate(again)]


def run_initial(job: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    boxes = [Mailbox(job, spec, started) for spec in job["mailboxes"]]
    errors: list[str] = []

    def run(box: Mailbox) -> None:
        try:
            box.run()
        except Exception as error:  # reported, never hidden
            errors.append(f"{box.spec['user_id']}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(box,)) for box in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    # Progress over all mailboxes, sampled from every batch's completion.
    events = sorted((t, box_index, done) for box_index, box in enumerate(boxes) for t, done in box.progress)
    latest = [0] * len(boxes)
    progress = []
    for t, box_index, done in events:
        latest[box_index] = done
        progress.append((t, sum(latest)))
    return {
        "wall_s": round(wall, 2), "created": sum(b.done for b in boxes), "failed": sum(b.failed for b in boxes),
        "resent_items": sum(b.retried for b in boxes), "errors": errors,
        "completions_s": [b.finished_at for b in boxes], "progress": thin(progress), "peak_memory_mb": peak_memory_mb(),
    }


def thin(progress: list[tuple[float, int]], points: int = 400) -> list[tuple[float, int]]:
    if len(progress) <= points:
        return progress
    step = math.ceil(len(progress) / points)
    return progress[::step] + [progress[-1]]


# ---- propagate -----------------------------------------------------------------------------------
class Mirror:
    """Two-way mirror of ``pairs`` events through webhooks, with the fewest calls."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.graph = session(job.get("ca"))
        self.crm = session()
        self.lock = threading.Lock()
        self.by_outlook: dict[str, str] = {}
        self.by_crm: dict[str, str] = {}
        self.outlook_etag: dict[str, str] = {}  # the changeKey our own PATCH produced
        self.crm_title: dict[str, str] = {}  # the title our own PUT wrote
        self.outlook_title: dict[str, str] = {}  # the subject our own PATCH wrote
        self.writing: dict[str, threading.Event] = {}  # our PATCH of that event is in flight
        self.handled = {"graph": 0, "crm": 0, "echoes_skipped": 0}

    def setup(self, port: int) -> dict[str, Any]:
        job = self.job
        http = session()
        created = http.post(f"{job['crm_provisioning']}/orgs", auth=(job["crm_client_id"], job["crm_client_secret"]), json={
            "org_name": "Floor Org", "super_admin": {"email": job["crm_email"], "first_name": "Floor", "last_name": "Script"}},
            timeout=30)
        created.raise_for_status()
        crm_user = str(created.json()["super_admin"]["user_id"])
        token, api = crm_grant(job, crm_user, http)
        self.crm.headers["Authorization"] = f"Zoho-oauthtoken {token}"
        self.api = f"{api}/crm/v8"
        self.graph.headers["Authorization"] = f"Bearer {graph_token(job, job['tenant'], self.graph)}"
        self.user = f"/users/{job['user_id']}"
        calendar = self.graph.post(f"{job['graph']}{self.user}/calendars", json={"name": "Floor"}, timeout=30)
        calendar.raise_for_status()
        self.calendar = str(calendar.json()["id"])
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        records = []
        for n in range(job["pairs"]):
            begin = start.timestamp() + (n + 24) * 3600
            records.append({"Event_Title": f"Floor pair {n:04d}", "All_day": False,
                            "Start_DateTime": datetime.fromtimestamp(begin, UTC).isoformat(),
                            "End_DateTime": datetime.fromtimestamp(begin + 1800, UTC).isoformat()})
        crm_ids: list[str] = []
        for offset in range(0, len(records), 100):
            inserted = self.crm.post(f"{self.api}/Events", json={"data": records[offset:offset + 100]}, timeout=60)
            inserted.raise_for_status()
            crm_ids += [str(r["details"]["id"]) for r in inserted.json()["data"]]
        for offset in range(0, len(records), BATCH):
            chunk = list(enumerate(zip(crm_ids[offset:offset + BATCH], records[offset:offset + BATCH], strict=True)))
            items = [{"id": str(i), "method": "POST", "url": f"{self.user}/calendars/{self.calendar}/events",
                      "headers": {"Content-Type": "application/json", "Prefer": 'outlook.timezone="UTC"'},
                      "body": event_body({**record, "id": crm_id}, self.calendar)} for i, (crm_id, record) in chunk]
            answer = self.graph.post(f"{job['graph']}/$batch", json={"requests": items}, timeout=60)
            answer.raise_for_status()
            for item in answer.json()["responses"]:
                crm_id = chunk[int(item["id"])][1][0]
                self.by_crm[crm_id] = str(item["body"]["id"])
                self.by_outlook[str(item["body"]["id"])] = crm_id
        base = f"http://127.0.0.1:{port}"
        expires = datetime.fromtimestamp(time.time() + 3 * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        subscription = self.graph.post(f"{job['graph']}/subscriptions", json={
            "changeType": "updated", "notificationUrl": f"{base}/graph", "clientState": "floor",
            "resource": f"users/{job['user_id']}/calendars/{self.calendar}/events", "expirationDateTime": expires}, timeout=60)
        subscription.raise_for_status()
        watch = self.crm.post(f"{self.api}/actions/watch", json={"watch": [{
            "channel_id": str(int(time.time() * 1000)), "events": ["Events.edit"], "notify_url": f"{base}/crm",
            "token": "floor", "return_affected_field_values": True}]}, timeout=60)
        watch.raise_for_status()
        return {"upn": job["upn"], "calendar_id": self.calendar, "crm_user_id": crm_user,
                "pairs": [[c, o] for c, o in self.by_crm.items()]}

    # Outlook -> CRM: the notification names the event; one GET, one PUT.
    def on_graph(self, body: dict[str, Any]) -> None:
        for note in body.get("value") or []:
            outlook_id = str((note.get("resourceData") or {}).get("id"))
            etag = str((note.get("resourceData") or {}).get("@odata.etag") or "")
            pending = self.writing.get(outlook_id)
            if pending is not None:  # Graph may notify before our own PATCH has answered
                pending.wait(10)
            with self.lock:
                crm_id = self.by_outlook.get(outlook_id)
                ours = crm_id is not None and self.outlook_etag.get(outlook_id) and self.outlook_etag[outlook_id] in etag
            if crm_id is None:
                continue
            if ours:
                self.handled["echoes_skipped"] += 1
                continue
            event = self.graph.get(f"{self.job['graph']}{self.user}/calendars/{self.calendar}/events/{outlook_id}",
                                   headers={"Prefer": 'outlook.timezone="UTC"'}, timeout=60).json()
            title = str(event.get("subject") or "")
            with self.lock:
                if self.outlook_title.get(outlook_id) == title:
                    self.handled["echoes_skipped"] += 1
                    continue
                self.crm_title[crm_id] = title
            self.crm.put(f"{self.api}/Events/{crm_id}", json={"data": [{"Event_Title": title}]}, timeout=60)
            self.handled["graph"] += 1

    # CRM -> Outlook: the callback carries the new values; one PATCH.
    def on_crm(self, body: dict[str, Any]) -> None:
        for affected in body.get("affected_values") or []:
            crm_id = str(affected.get("record_id"))
            title = (affected.get("values") or {}).get("Event_Title")
            with self.lock:
                outlook_id = self.by_crm.get(crm_id)
                ours = title is None or self.crm_title.get(crm_id) == title
            if outlook_id is None:
                continue
            if ours:
                self.handled["echoes_skipped"] += 1
                continue
            written = threading.Event()
            with self.lock:
                self.writing[outlook_id] = written
                self.outlook_title[outlook_id] = str(title)
            try:
                patched = self.graph.patch(f"{self.job['graph']}{self.user}/events/{outlook_id}", json={"subject": title},
                                           timeout=60)
                with self.lock:
                    self.outlook_etag[outlook_id] = str(patched.json().get("changeKey") or "")
            finally:
                written.set()
            self.handled["crm"] += 1


def run_propagate(job: dict[str, Any]) -> None:
    mirror = Mirror(job)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            token = parse_qs(urlparse(self.path).query).get("validationToken")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if token:  # Graph's validation handshake
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(token[0].encode())
                return
            self.send_response(202 if self.path.startswith("/graph") else 200)
            self.end_headers()
            body = json.loads(raw or b"{}")
            threading.Thread(target=mirror.on_graph if self.path.startswith("/graph") else mirror.on_crm,
                             args=(body,), daemon=True).start()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = mirror.setup(server.server_address[1])
    print("READY " + json.dumps(ready), flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    print("DONE " + json.dumps({**mirror.handled, "peak_memory_mb": peak_memory_mb()}), flush=True)
    server.shutdown()


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    job = json.load(sys.stdin)
    if mode == "initial":
        print("RESULT " + json.dumps(run_initial(job)), flush=True)
        return 0
    if mode == "propagate":
        run_propagate(job)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.pop("PYTHONBREAKPOINT", None)
    sys.exit(main())
