"""What the webhooks refuse before any storage read (issue 18 §4): Graph entries screened on
their own content (GUID ids, clientState present and bounded, duplicates, a cap per POST),
CRM callbacks whose channel id is not in our shape or whose token we could not have issued."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.crm.watch import CallbackRejected, new_channel_id, parse_callback
from shared.graph.notifications import (
    MAX_CLIENT_STATE,
    MAX_SUBSCRIPTIONS_PER_POST,
    Dropped,
    NotificationRejected,
    screen_change_notifications,
    screen_lifecycle_notifications,
)

GUID = "1f0c1c0e-0000-4000-8000-000000000001"


def change(subscription_id: Any = GUID, client_state: Any = "secret", **extra: Any) -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "clientState": client_state, "changeType": "updated",
            "resource": "Users/u/Events/e", **extra}


def body(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"value": list(entries)}).encode()


@pytest.mark.parametrize("hostile", ["a/b", "a\\b", "a#b", "a?b", f"{GUID}/x", f"{GUID}\n", "x" * 5000, "",
                                     GUID.replace("-", ""), f"{{{GUID}}}", "１" * 36])
def test_a_subscription_id_that_is_not_a_guid_never_gets_a_lookup(hostile: str) -> None:
    screened = screen_change_notifications(body(change(hostile), change()))
    assert [n.subscription_id for n in screened.notifications] == [GUID]
    assert screened.dropped == {Dropped.MALFORMED_ID: 1} and screened.received == 2


@pytest.mark.parametrize("client_state", [None, "", "x" * (MAX_CLIENT_STATE + 1), 42, ["a"]])
def test_a_missing_or_oversized_client_state_never_gets_a_lookup(client_state: Any) -> None:
    screened = screen_change_notifications(body(change(client_state=client_state)))
    assert screened.notifications == [] and screened.dropped == {Dropped.BAD_CLIENT_STATE: 1}


def test_duplicates_are_one_entry_and_distinct_subscriptions_are_capped() -> None:
    many = [change(str(uuid.uuid4())) for _ in range(MAX_SUBSCRIPTIONS_PER_POST + 50)]
    screened = screen_change_notifications(body(*([change()] * 5000), *many))
    assert len(screened.notifications) == MAX_SUBSCRIPTIONS_PER_POST
    assert screened.notifications[0].subscription_id == GUID  # order kept: the first come first
    assert screened.dropped == {Dropped.DUPLICATE: 4999, Dropped.OVER_CAP: 51}
    assert screened.summary() == (f"{5000 + MAX_SUBSCRIPTIONS_PER_POST + 50} received, {MAX_SUBSCRIPTIONS_PER_POST} kept; "
                                  "dropped: 4999 duplicate, 51 over the per-POST cap")


def test_the_same_subscription_with_another_client_state_is_another_entry() -> None:
    """A forged entry placed first cannot hide the genuine one behind it."""
    screened = screen_change_notifications(body(change(client_state="forged"), change(client_state="genuine")))
    assert [n.client_state for n in screened.notifications] == ["forged", "genuine"]


@pytest.mark.parametrize("bad", [b"not json", b"[]", b'{"value": {}}', body({"changeType": "created"}),
                                 body(change(changeType="exploded")), body(change(subscription_id=42)), body("x"),
                                 body(change(changeType="x" * 100_000))])
def test_a_post_not_in_graphs_shape_is_refused_whole(bad: bytes) -> None:
    with pytest.raises(NotificationRejected) as refused:
        screen_change_notifications(bad)
    assert len(str(refused.value)) < 200  # nothing hostile echoed at length


def test_lifecycle_entries_are_screened_the_same_way() -> None:
    entry = {"subscriptionId": "../x", "clientState": "s", "lifecycleEvent": "missed"}
    screened = screen_lifecycle_notifications(body(entry, {**entry, "subscriptionId": GUID}, {**entry, "subscriptionId": GUID}))
    assert [n.subscription_id for n in screened.notifications] == [GUID]
    assert screened.dropped == {Dropped.MALFORMED_ID: 1, Dropped.DUPLICATE: 1}


def callback(**changes: Any) -> bytes:
    return json.dumps({"channel_id": new_channel_id(), "module": "Events", "operation": "update", "ids": ["1"],
                       "token": "t" * 43, **changes}).encode()


def test_a_channel_id_of_ours_parses_as_text_or_number() -> None:
    channel = new_channel_id()
    assert parse_callback(callback(channel_id=channel)).channel_id == channel
    assert parse_callback(callback(channel_id=int(channel))).channel_id == channel


@pytest.mark.parametrize("hostile", ["1/2", "12#", "1?a", "1\\2", "", "0", "-5", "01", "1" * 20, str(2**63), "１２３",
                                     "1 ", "1\n", True, None, 1.5, ["1"]])
def test_a_channel_id_not_in_our_shape_is_malformed(hostile: Any) -> None:
    with pytest.raises(CallbackRejected) as refused:
        parse_callback(callback(channel_id=hostile))
    assert refused.value.reason == "malformed"


@pytest.mark.parametrize("token", [None, "", "t" * 51])
def test_a_token_we_could_not_have_issued_is_refused_before_any_lookup(token: Any) -> None:
    with pytest.raises(CallbackRejected) as refused:
        parse_callback(callback(token=token))
    assert refused.value.reason == "bad_token"
