"""Participants never become Outlook attendees; the body block reads back without echo (R3.9)."""

from __future__ import annotations

from calendar_examples import OWNER, crm_record, graph_event, same

from shared.sync.calendar_mapping import (
    BLOCK_START,
    crm_event_to_fields,
    fields_to_crm_event,
    fields_to_graph_event,
    graph_event_to_fields,
)

CONTACT = {"type": "contact", "participant": "5725767000000777001", "name": "Ada Lovelace",
           "Email": "ada@example.com", "invited": True, "status": "accepted"}
GUEST = {"type": "email", "Email": "Guest1@Example.com", "name": "Guest 1", "invited": True}


def test_crm_participants_go_into_a_marked_body_block_never_into_attendees():
    fields = crm_event_to_fields(crm_record(Description="Bring the contract.", Participants=[CONTACT, GUEST]))
    graph = fields_to_graph_event(fields)
    assert "attendees" not in graph
    content = graph["body"]["content"]
    assert BLOCK_START in content and "Ada Lovelace &lt;ada@example.com&gt;" in content


def test_the_block_reads_back_as_participants_and_never_echoes_into_the_description():
    fields = crm_event_to_fields(crm_record(Description="Bring the contract.", Participants=[CONTACT, GUEST]))
    back = graph_event_to_fields(graph_event(body=fields_to_graph_event(fields)["body"]))
    assert back["description"] == "Bring the contract."
    assert same(back, fields)
    record = fields_to_crm_event(back, owner_id=OWNER, current_participants=[CONTACT, GUEST])
    assert "CRM participants" not in record["Description"]
    assert record["Participants"][0] == CONTACT  # the contact keeps its type and id
    # A second round trip changes nothing.
    again = graph_event_to_fields(graph_event(body=fields_to_graph_event(crm_event_to_fields(record))["body"]))
    assert same(again, fields)


def test_the_text_form_of_the_block_is_read_too_even_reflowed():
    body = {"contentType": "text", "content": "Notes\r\n\r\n-- CRM  participants --\r\nAda Lovelace <ada@example.com>\r\n"
                                              "guest1@example.com\r\n— end of CRM participants —\r\nAfter"}
    fields = graph_event_to_fields(graph_event(body=body))
    assert fields["description"] == "Notes\n\nAfter"
    assert fields["attendees"] == [{"email": "ada@example.com", "name": "Ada Lovelace"},
                                   {"email": "guest1@example.com", "name": None}]


def test_outlook_attendees_become_crm_participants_with_their_email():
    event = graph_event(attendees=[
        {"type": "required", "emailAddress": {"name": "Bob", "address": "bob@example.com"},
         "status": {"response": "none"}},
        {"type": "resource", "emailAddress": {"name": "Room 4", "address": "room4@example.com"}},
    ])
    fields = graph_event_to_fields(event)
    assert fields["attendees"] == [{"email": "bob@example.com", "name": "Bob"}]
    [bob] = fields_to_crm_event(fields, owner_id=OWNER)["Participants"]
    assert bob == {"type": "email", "participant": "bob@example.com", "Email": "bob@example.com", "name": "Bob",
                   "invited": False}


def test_people_both_in_the_block_and_attendees_count_once_and_can_stay_out_of_the_block():
    fields = crm_event_to_fields(crm_record(Participants=[GUEST]))
    body = fields_to_graph_event(fields)["body"]
    event = graph_event(body=body, attendees=[{"type": "required",
                                               "emailAddress": {"name": "G", "address": "guest1@example.com"}}])
    assert same(graph_event_to_fields(event), fields)
    assert "guest1" not in fields_to_graph_event(fields, in_outlook=["GUEST1@example.com"])["body"]["content"].lower()


def test_participant_email_case_is_not_a_change():
    upper = crm_event_to_fields(crm_record(Participants=[GUEST]))
    lower = crm_event_to_fields(crm_record(Participants=[{**GUEST, "Email": "guest1@example.com"}]))
    assert same(upper, lower)
