"""The in-memory storage of the fast tests (``tests/fakes``) against Azurite: one set of
assertions, run on both, about everything the product relies on (ETags, conditional writes,
atomic groups, the filters it writes, absent properties, queue checks). Issue 17 §2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient
from pydantic import BaseModel

from shared.storage import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    EntityShapeError,
    JobQueue,
    MessageTooLarge,
    StorageError,
    TableEntity,
    TableOperation,
    TableRepository,
    partitions_starting,
)
from tests.fakes.queues import JobQueueInMemory
from tests.fakes.tables import TableRepositoryInMemory

SIDES = ["azurite", "in memory"]


class Phase(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class Row(TableEntity):
    state: Phase = Phase.ACTIVE
    count: int = 0
    note: str | None = None
    until: datetime | None = None
    tags: list[str] = []


class Message(BaseModel):
    text: str


def _row(pk: str, rk: str, **fields: Any) -> Row:
    return Row(partition_key=pk, row_key=rk, **fields)


@pytest.fixture(params=SIDES)
def table(request, azurite, unique_name) -> Any:  # type: ignore[no-untyped-def]
    if request.param == "in memory":
        return TableRepositoryInMemory(Row)
    repository = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string), unique_name("c"), Row)
    repository.ensure_table()
    return repository


def test_reads_and_conditional_writes(table: Any) -> None:
    assert table.get("p", "a") is None
    first = table.insert(_row("p", "a", count=1, tags=["x", "y"], until=datetime(2026, 1, 2, 3, 4, tzinfo=UTC)))
    read = table.get("p", "a")
    assert read.entity == first.entity and read.etag == first.etag
    assert read.entity.note is None and read.entity.tags == ["x", "y"]
    with pytest.raises(EntityAlreadyExists):
        table.insert(_row("p", "a"))
    second = table.replace(_row("p", "a", count=2), first.etag)
    assert second.etag != first.etag and table.get("p", "a").entity.count == 2
    with pytest.raises(ConcurrencyConflict):
        table.replace(_row("p", "a", count=3), first.etag)  # a stale ETag
    with pytest.raises(ConcurrencyConflict):
        table.replace(_row("p", "gone", count=3), second.etag)  # vanished
    assert table.upsert(_row("p", "a", count=9)).etag != second.etag
    assert table.upsert(_row("p", "b")).entity.row_key == "b"
    with pytest.raises(ConcurrencyConflict):
        table.delete("p", "a", etag=second.etag)
    table.delete("p", "a")
    table.delete("p", "a")  # absent is fine
    table.delete("p", "never")
    assert table.get("p", "a") is None


def test_queries_the_filters_the_product_writes(table: Any) -> None:
    soon = datetime(2026, 6, 1, tzinfo=UTC)
    table.transact([TableOperation("upsert", _row("m", f"link|{i}", state=Phase.PAUSED if i % 2 else Phase.ACTIVE,
                                                     until=soon + timedelta(days=i))) for i in range(5)]
                   + [TableOperation("upsert", _row("m", "series|1")), TableOperation("upsert", _row("n", "link|9"))])
    assert [s.entity.row_key for s in table.query("m")] == ["link|0", "link|1", "link|2", "link|3", "link|4", "series|1"]
    assert [s.entity.row_key for s in table.query("m", where="RowKey ge @lo and RowKey lt @hi",
                                                     parameters={"lo": "link|", "hi": "link}"})] == [f"link|{i}" for i in range(5)]
    paused = table.query(where="state eq @p", parameters={"p": "paused"})
    assert sorted(s.entity.row_key for s in paused) == ["link|1", "link|3"]
    either = table.query(where="state eq @a or state eq @b", parameters={"a": "paused", "b": "active"})
    assert len(list(either)) == 7
    early = table.query(where="until lt @now", parameters={"now": soon + timedelta(days=2)})
    assert sorted(s.entity.row_key for s in early) == ["link|0", "link|1"]  # absent "until": never matched


def test_partitions_starting_with_a_prefix_are_one_range_query(table: Any) -> None:
    """An org's linked users, a tenant's profiles (the admin's view of a big org): "crm|o1|"
    must not take "crm|o10|..." nor a key that only looks alike."""
    keys = ["crm|o1|u1", "crm|o1|u2", "crm|o1|u3|x", "crm|o10|u4", "crm|o1", "crm|o2|u5", "crm|o0|u6", "crm|o1}"]
    for key in keys:
        table.upsert(_row(key, "link"))
    where, parameters = partitions_starting("crm|o1|")
    assert [s.entity.partition_key for s in table.query(where=f"{where} and RowKey eq @r", parameters={**parameters, "r": "link"})] == [
        "crm|o1|u1", "crm|o1|u2", "crm|o1|u3|x"]
    with pytest.raises(ValueError):
        partitions_starting("crm|o1")


def test_transactions_are_atomic_per_group(table: Any) -> None:
    made = table.transact([TableOperation("insert", _row("big", f"{i:03}")) for i in range(150)])
    assert len(made) == 150 and all(m is not None for m in made)
    assert len(list(table.query("big"))) == 150  # 100 + 50: two groups
    with pytest.raises(EntityAlreadyExists):
        table.transact([TableOperation("insert", _row("t", "new")), TableOperation("insert", _row("big", "001"))][1:]
                       + [TableOperation("insert", _row("big", "new"))])
    assert table.get("big", "new") is None  # the group failed whole
    stale = table.get("big", "000").etag
    table.upsert(_row("big", "000", count=5))
    with pytest.raises(ConcurrencyConflict):
        table.transact([TableOperation("upsert", _row("big", "x")), TableOperation("replace", _row("big", "000"), etag=stale)])
    assert table.get("big", "x") is None and table.get("big", "000").entity.count == 5
    with pytest.raises(StorageError):
        table.transact([TableOperation("delete", _row("big", "nothing here"))])
    vanished = table.get("big", "010").etag
    table.delete("big", "010")
    with pytest.raises(ConcurrencyConflict):  # a conditional write of a row deleted since: a lost race
        table.transact([TableOperation("upsert", _row("big", "z")), TableOperation("replace", _row("big", "010"), etag=vanished)])
    assert table.get("big", "z") is None
    with pytest.raises(ValueError):
        table.transact([TableOperation("upsert", _row("big", "y")), TableOperation("delete", _row("big", "y"))])
    assert table.transact([TableOperation("delete", _row("big", "001")), TableOperation("upsert", _row("big", "002", count=7))]) \
        == [None, table.get("big", "002")]
    assert table.get("big", "001") is None


def test_transactions_carry_any_key_and_value_the_product_may_write(table: Any) -> None:
    """Our entity-group transactions are hand-written (``shared.storage.entity_group``): keys
    with quotes, percent signs, spaces and non-ASCII, and values that look like the multipart
    framing around them, come back as written, with each write's ETag."""
    keys = ["it's", "100%|done", "a b", "é|ü|中", "crm%7C42", "''"]
    hostile = "line\r\n--batch_x\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n--changeset_y--"
    rows = [_row("p'%|é", key, count=n, note=hostile + key, tags=[hostile, key], until=datetime(2026, 12, 7, 13, 0, n, tzinfo=UTC))
            for n, key in enumerate(keys)]
    written = table.transact([TableOperation("insert", row) for row in rows])
    assert [w.entity for w in written] == rows
    for row, stored in zip(rows, written, strict=True):
        again = table.get(row.partition_key, row.row_key)
        assert again is not None and again.entity == row and again.etag == stored.etag
    big = _row("p'%|é", "it's", count=2**40, note="")
    replaced = table.transact([TableOperation("replace", big, etag=written[0].etag),
                               TableOperation("delete", rows[1], etag=written[1].etag),
                               TableOperation("upsert", _row("p'%|é", "new'one", note=hostile))])
    assert replaced[1] is None and table.get("p'%|é", "100%|done") is None
    assert table.get("p'%|é", "it's").entity.count == 2**40
    assert table.get("p'%|é", "new'one").entity.note == hostile
    with pytest.raises(ConcurrencyConflict):  # the ETag of the version just replaced
        table.transact([TableOperation("replace", big, etag=written[0].etag)])


def test_the_services_limits_apply(table: Any) -> None:
    with pytest.raises(EntityShapeError):
        table.upsert(_row("p", "bad/key"))
    with pytest.raises(EntityShapeError):
        table.transact([TableOperation("upsert", _row("p", "big", note="x" * 70_000))])
    assert table.get("p", "big") is None


@pytest.fixture(params=SIDES)
def queue(request, azurite, unique_name) -> Any:  # type: ignore[no-untyped-def]
    if request.param == "in memory":
        return JobQueueInMemory(Message)
    real = JobQueue(QueueServiceClient.from_connection_string(azurite.connection_string), unique_name("q"), Message)
    real.ensure_queue()
    return real


@pytest.mark.parametrize("side", SIDES)
def test_a_queue_tells_whether_a_message_waits(side: str, azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    if side == "in memory":
        queue: Any = JobQueueInMemory(Message)
    else:
        queue = JobQueue(QueueServiceClient.from_connection_string(azurite.connection_string), unique_name("q"), Message,
                         waiting_max_age=timedelta(0))
    assert queue.has_waiting() is False  # not even created yet
    queue.send(Message(text="later"), delay=timedelta(seconds=30))
    assert queue.has_waiting() is False  # invisible until its delay has passed
    queue.send(Message(text="now"))
    assert queue.has_waiting() is True


def test_a_look_at_the_waiting_messages_is_kept_a_few_seconds(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    clock = [100.0]
    queue = JobQueue(QueueServiceClient.from_connection_string(azurite.connection_string), unique_name("q"), Message,
                     waiting_max_age=timedelta(seconds=3), monotonic=lambda: clock[0])
    assert queue.has_waiting() is False
    queue.send(Message(text="now"))
    clock[0] += 2.9
    assert queue.has_waiting() is False  # one peek per period, whoever asks
    clock[0] += 0.2
    assert queue.has_waiting() is True


def test_queues_check_what_they_carry(queue: Any) -> None:
    first, second = queue.send(Message(text="a")), queue.send(Message(text="b"), delay=timedelta(seconds=30))
    assert first and second and first != second
    with pytest.raises(TypeError):
        queue.send(Row(partition_key="p", row_key="r"))
    with pytest.raises(MessageTooLarge):
        queue.send(Message(text="x" * 50_000))
