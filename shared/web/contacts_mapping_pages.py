"""The contacts Configuration window (SPEC R4.2, issue 8): ``GET|PUT
/api/settings/microsoft/contacts/mapping`` and ``POST .../contacts/mapping/preview``.

GET answers JSON to ``Accept: application/json`` (the window's script, API clients) and the
window itself otherwise. PUT takes ``{"pairs": [{"crm_field", "graph_field", "direction"}]}``
with the session's CSRF token in ``X-CSRF-Token``; a mapping that cannot work is refused with
422 and every problem naming its field, and nothing is stored. Bad input (not JSON, the wrong
shape, too big) is a 400 that says what is wrong, and nothing is stored either.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from shared.accounts.models import MemberIdentity
from shared.http_messages import WebRequest, WebResponse
from shared.sync.contact_settings import ContactSettings
from shared.sync.contacts import (
    DEFAULT_CONTACT_MAPPING,
    GRAPH_CONTACT_FIELDS,
    ContactMapping,
    CrmCatalogue,
    Direction,
    FieldPair,
    MappingProblem,
    PreviewRow,
)
from shared.web.i18n import translate
from shared.web.pages import language_of, render
from shared.web.visit import Refusal, Visit
from shared.wiring import Services

MAX_BODY_BYTES = 64 * 1024
MAX_PAIRS = 200  # ContactMapping's own limit
PAIR_KEYS = frozenset({"crm_field", "graph_field", "direction"})


class BadMapping(Exception):
    """The body is not a mapping we can read: answered 400 (or 422 for a problem of a pair)."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


class ContactMappingPages:
    def __init__(self, services: Services, settings: ContactSettings | None = None) -> None:
        self.s = services
        self.base = services.settings.public_base_url
        self.contacts = settings or ContactSettings(services.sync.d)

    # -- GET --------------------------------------------------------------------------------

    def show(self, request: WebRequest) -> WebResponse:
        json_wanted = wants_json(request)
        try:
            visit = Visit.open(self.s.sessions, request, start=False)
            member = visit.member(self.s.accounts)
        except Refusal as refusal:
            return _json_refusal(request, refusal) if json_wanted else refusal.response
        lang = language_of(request)
        catalogue = self.contacts.catalogue(member)
        mapping = self._current(member)
        sample = self.contacts.sample(member, catalogue)
        rows = self.contacts.preview(member, mapping, sample=sample, catalogue=catalogue) if sample else []
        problems = self.contacts.problems(member, mapping, catalogue=catalogue)
        payload = {
            "mapping": mapping_json(mapping),
            "default": mapping_json(DEFAULT_CONTACT_MAPPING),
            "catalogues": {"crm": crm_catalogue_json(catalogue), "graph": graph_catalogue_json()},
            "directions": [d.value for d in Direction],
            "preview": preview_json(sample, rows, lang),
            "problems": [problem_json(p, lang) for p in problems],
        }
        if json_wanted:
            return visit.answer(WebResponse.json(payload))
        return visit.answer(render(
            request, "contacts_mapping.html", signed_in=True, member_nav=True, csrf_token=visit.session.csrf_token,
            mapping=payload["mapping"], crm_fields=payload["catalogues"]["crm"],
            graph_fields=payload["catalogues"]["graph"], directions=payload["directions"],
            preview=payload["preview"], problems=payload["problems"],
        ))

    # -- PUT --------------------------------------------------------------------------------

    def save(self, request: WebRequest) -> WebResponse:
        lang = language_of(request)
        try:
            visit, member = self._json_visit(request)
        except Refusal as refusal:
            return _json_refusal(request, refusal)
        try:
            mapping = parse_mapping(request.body, lang)
        except BadMapping as bad:
            return visit.answer(_bad(bad, lang))
        catalogue = self.contacts.catalogue(member)
        problems = self.contacts.problems(member, mapping, catalogue=catalogue)
        if problems:
            return visit.answer(WebResponse.json({
                "error": translate(lang, "mapping.refused"),
                "problems": [problem_json(p, lang) for p in problems],
            }, status=422))
        changed = self.s.sync.save_contact_mapping(member, mapping)  # audits the change itself
        return visit.answer(WebResponse.json({
            "mapping": mapping_json(mapping), "changed_pairs": sorted(changed),
            "message": translate(lang, "mapping.saved", count=str(len(changed))),
        }))

    # -- POST preview -----------------------------------------------------------------------

    def preview(self, request: WebRequest) -> WebResponse:
        """The preview and problems of an unsaved mapping; stores nothing."""
        lang = language_of(request)
        try:
            visit, member = self._json_visit(request)
        except Refusal as refusal:
            return _json_refusal(request, refusal)
        try:
            mapping = parse_mapping(request.body, lang)
        except BadMapping as bad:
            return visit.answer(_bad(bad, lang))
        catalogue = self.contacts.catalogue(member)
        problems = self.contacts.problems(member, mapping, catalogue=catalogue)
        sample = self.contacts.sample(member, catalogue)
        # Pairs naming unknown fields cannot be read from a contact: preview the rest.
        unknown = {(p.field, p.side.value) for p in problems if p.code.value == "unknown_field"}
        readable = ContactMapping(pairs=tuple(
            pair for pair in mapping.pairs
            if (pair.crm_field, "crm") not in unknown and (pair.outlook_field, "outlook") not in unknown
        ))
        rows = self.contacts.preview(member, readable, sample=sample, catalogue=catalogue) if sample else []
        return visit.answer(WebResponse.json({
            "preview": preview_json(sample, rows, lang),
            "problems": [problem_json(p, lang) for p in problems],
        }))

    # -- helpers ----------------------------------------------------------------------------

    def _current(self, member: MemberIdentity) -> ContactMapping:
        read = getattr(self.s.sync, "contact_mapping", None)
        return read(member) if read is not None else DEFAULT_CONTACT_MAPPING

    def _json_visit(self, request: WebRequest) -> tuple[Visit, MemberIdentity]:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = visit.member(self.s.accounts)
        if not json_is_genuine(request, visit.session.csrf_token, self.base):
            lang = language_of(request)
            raise Refusal(WebResponse.json({"error": translate(lang, "csrf.body")}, status=403))
        return visit, member


# -- the wire -------------------------------------------------------------------------------


def wants_json(request: WebRequest) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def json_is_genuine(request: WebRequest, session_token: str, public_base_url: str) -> bool:
    """The JSON twin of ``csrf.form_is_genuine``: this session's token in ``X-CSRF-Token``
    and, if the browser says where the call came from, our own origin. A JSON body also
    cannot be sent across sites without a CORS preflight we never answer."""
    origin = request.headers.get("origin")
    allowed = {_origin(public_base_url), _origin(request.url)}
    if origin and origin.lower() not in allowed:
        return False
    sent = request.headers.get("x-csrf-token", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), session_token.encode())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_mapping(body: bytes, lang: str) -> ContactMapping:
    """The mapping of a PUT or preview body, or ``BadMapping`` saying what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise BadMapping(413, translate(lang, "mapping.bad.too_big", limit=str(MAX_BODY_BYTES // 1024)))
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadMapping(400, translate(lang, "mapping.bad.json")) from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list) or set(data) - {"pairs"}:
        raise BadMapping(400, translate(lang, "mapping.bad.shape"))
    items = data["pairs"]
    if len(items) > MAX_PAIRS:
        raise BadMapping(400, translate(lang, "mapping.bad.too_many", limit=str(MAX_PAIRS)))
    pairs: list[FieldPair] = []
    problems: list[dict[str, str]] = []
    for number, item in enumerate(items, start=1):
        if (
            not isinstance(item, dict)
            or set(item) - PAIR_KEYS
            or not all(isinstance(item.get(k), str) and 0 < len(item[k].strip()) <= 100
                       for k in ("crm_field", "graph_field"))
        ):
            raise BadMapping(400, translate(lang, "mapping.bad.pair", number=str(number)))
        crm_field, graph_field = item["crm_field"].strip(), item["graph_field"].strip()
        direction = item.get("direction", Direction.BOTH.value)
        if direction not in {d.value for d in Direction}:
            problems.append({"code": "unknown_direction", "field": crm_field, "side": "crm",
                             "message": translate(lang, "mapping.problem.unknown_direction", field=crm_field,
                                                  direction=str(direction)[:40])})
            continue
        pairs.append(FieldPair(crm_field=crm_field, outlook_field=graph_field, direction=Direction(direction)))
    if problems:
        raise BadMapping(422, translate(lang, "mapping.refused"), problems)
    return ContactMapping(pairs=tuple(pairs))


def _bad(bad: BadMapping, lang: str) -> WebResponse:
    body: dict[str, Any] = {"error": bad.message}
    if bad.problems:
        body["problems"] = bad.problems
    return WebResponse.json(body, status=bad.status)


def _json_refusal(request: WebRequest, refusal: Refusal) -> WebResponse:
    """A refusal of the visit (expired session, not a member, CSRF) as JSON for the script."""
    response = refusal.response
    if response.content_type.startswith("application/json"):
        return response
    lang = language_of(request)
    key = {401: "signin.expired.body", 403: "member.required.body"}.get(response.status, "error.body")
    answer = WebResponse.json({"error": translate(lang, key)}, status=response.status)
    answer.cookies.extend(response.cookies)
    return answer


def mapping_json(mapping: ContactMapping) -> dict[str, Any]:
    return {"pairs": [
        {"crm_field": p.crm_field, "graph_field": p.outlook_field, "direction": p.direction.value, "key": p.key}
        for p in mapping.pairs
    ]}


def crm_catalogue_json(catalogue: CrmCatalogue) -> list[dict[str, Any]]:
    """Every CRM field a pair may name: writable ones both ways, read-only ones CRM to Outlook."""
    return [
        {"name": f.api_name, "label": f.label, "type": f.type.value, "writable": f.writable,
         "required": f.required, "max_length": f.max_length}
        for f in catalogue.values()
    ]


def graph_catalogue_json() -> list[dict[str, Any]]:
    """The Outlook fields Graph can write; the others are not offered (R4.2)."""
    return [{"name": f.name, "label": f.label, "type": f.type.value} for f in GRAPH_CONTACT_FIELDS.values()]


def problem_json(problem: MappingProblem, lang: str) -> dict[str, str]:
    message = problem.message
    if lang != "en":
        message = translate(lang, f"mapping.problem.{problem.code.value}", field=problem.field)
    return {"code": problem.code.value, "field": problem.field, "side": problem.side.value, "message": message}


def preview_json(sample: dict[str, Any] | None, rows: list[PreviewRow], lang: str) -> dict[str, Any]:
    if sample is None:
        return {"source": None, "rows": []}
    name = str(sample.get("Full_Name") or " ".join(
        str(sample.get(k) or "") for k in ("First_Name", "Last_Name")).strip() or sample.get("id", ""))
    return {
        "source": {"side": "crm", "id": str(sample.get("id", "")), "name": name},
        "rows": [
            {"field": row.target_field, "value": _shown(row.value),
             "problem": problem_json(row.problem, lang) if row.problem else None}
            for row in rows
        ],
    }


def _shown(value: Any) -> str:
    """A canonical value as one line of text (an address dict, a list, a date)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
