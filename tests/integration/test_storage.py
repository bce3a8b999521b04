"""The storage layer against Azurite: typed round trips, ETag concurrency, transactions
split into groups of 100 per partition, the service limits Azurite does not enforce, and
base64 JSON queue messages."""

from __future__ import annotations

import base64
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient
from pydantic import BaseModel

from shared.storage import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    EntityShapeError,
    JobQueue,
    MessageTooLarge,
    Stored,
    TableEntity,
    TableOperation,
    TableRepository,
    decode_message,
)
from shared.storage.account import TABLE_CONNECTIONS, StorageAccount
from shared.storage.queues import InvalidMessage, decode_wire_message


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str


class Sample(TableEntity):
    title: str
    count: int = 0
    big: int = 0
    ratio: float = 0.0
    active: bool = True
    when: datetime | None = None
    blob: bytes | None = None
    colour: Colour = Colour.RED
    address: Address | None = None
    tags: list[str] = []
    note: str | None = None


@pytest.fixture
def repo(azurite, unique_name) -> TableRepository[Sample]:  # type: ignore[no-untyped-def]
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    repository = TableRepository(service, unique_name("t"), Sample)
    repository.ensure_table()
    return repository


def test_round_trip_keeps_every_type(repo: TableRepository[Sample]) -> None:
    when = datetime(2026, 11, 25, 9, 30, 15, tzinfo=UTC)
    original = Sample(
        partition_key="member-1",
        row_key="a",
        title="Réunion 🗓",
        count=7,
        big=2**40,
        ratio=0.25,
        active=False,
        when=when,
        blob=b"\x00\x01",
        colour=Colour.BLUE,
        address=Address(street="1 rue de la Paix", city="Paris"),
        tags=["x", "y"],
    )
    repo.insert(original)
    stored = repo.get("member-1", "a")
    assert stored is not None
    assert stored.entity == original
    assert stored.etag


def test_missing_entity_is_none(repo: TableRepository[Sample]) -> None:
    assert repo.get("nobody", "nothing") is None


def test_insert_twice_is_refused(repo: TableRepository[Sample]) -> None:
    repo.insert(Sample(partition_key="p", row_key="r", title="one"))
    with pytest.raises(EntityAlreadyExists):
        repo.insert(Sample(partition_key="p", row_key="r", title="two"))
    assert repo.get("p", "r").entity.title == "one"  # type: ignore[union-attr]


def test_etag_conflict_is_a_clear_retryable_error(repo: TableRepository[Sample]) -> None:
    first = repo.insert(Sample(partition_key="p", row_key="r", title="v1"))
    mine = repo.get("p", "r")
    theirs = repo.get("p", "r")
    assert mine and theirs
    repo.replace(theirs.entity.model_copy(update={"title": "theirs"}), theirs.etag)
    with pytest.raises(ConcurrencyConflict) as caught:
        repo.replace(mine.entity.model_copy(update={"title": "mine"}), mine.etag)
    assert caught.value.retryable
    assert repo.get("p", "r").entity.title == "theirs"  # type: ignore[union-attr]
    # Deleting with a stale ETag is refused too; without one it is idempotent.
    with pytest.raises(ConcurrencyConflict):
        repo.delete("p", "r", etag=first.etag)
    repo.delete("p", "r")
    repo.delete("p", "r")
    assert repo.get("p", "r") is None


def test_transaction_of_250_is_split_into_100_100_50(repo: TableRepository[Sample], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sizes: list[int] = []
    original = repo._send_transaction

    def spy(writes):  # type: ignore[no-untyped-def]
        sizes.append(len(writes))
        return original(writes)

    monkeypatch.setattr(repo, "_send_transaction", spy)
    ops = [TableOperation("upsert", Sample(partition_key="p1", row_key=f"{i:04d}", title=str(i))) for i in range(250)]
    results = repo.transact(ops)
    assert sorted(sizes) == [50, 100, 100]  # sent a few at once: in any order
    assert len(results) == 250 and all(r is not None and r.etag for r in results)
    assert sorted(s.entity.row_key for s in repo.query("p1")) == [f"{i:04d}" for i in range(250)]


def test_transaction_groups_by_partition_and_keeps_result_order(repo: TableRepository[Sample], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sizes: list[int] = []
    original = repo._send_transaction
    monkeypatch.setattr(repo, "_send_transaction", lambda writes: sizes.append(len(writes)) or original(writes))
    ops = [
        TableOperation("insert", Sample(partition_key=f"p{i % 3}", row_key=f"r{i}", title=f"t{i}")) for i in range(30)
    ]
    results = repo.transact(ops)
    assert sorted(sizes) == [10, 10, 10]
    assert [r.entity.title for r in results] == [f"t{i}" for i in range(30)]  # type: ignore[union-attr]


def test_transaction_with_stale_etag_changes_nothing(repo: TableRepository[Sample]) -> None:
    stored = repo.insert(Sample(partition_key="p", row_key="a", title="a1"))
    repo.replace(stored.entity.model_copy(update={"title": "a2"}), stored.etag)
    ops = [
        TableOperation("insert", Sample(partition_key="p", row_key="b", title="b")),
        TableOperation("replace", Sample(partition_key="p", row_key="a", title="a3"), etag=stored.etag),
    ]
    with pytest.raises(ConcurrencyConflict):
        repo.transact(ops)
    assert repo.get("p", "b") is None  # atomic within the group
    assert repo.get("p", "a").entity.title == "a2"  # type: ignore[union-attr]


def test_same_entity_twice_in_one_transaction_is_refused(repo: TableRepository[Sample]) -> None:
    ops = [TableOperation("upsert", Sample(partition_key="p", row_key="same", title=str(i))) for i in range(2)]
    with pytest.raises(ValueError, match="twice"):
        repo.transact(ops)


def test_query_with_filter_parameters(repo: TableRepository[Sample]) -> None:
    repo.transact([TableOperation("upsert", Sample(partition_key="q", row_key=f"{i}", title="t", count=i)) for i in range(10)])
    found = repo.query("q", where="count ge @low", parameters={"low": 7})
    assert sorted(s.entity.count for s in found) == [7, 8, 9]


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        (Sample(partition_key="p/1", row_key="r", title="x"), "forbids"),
        (Sample(partition_key="p", row_key="r#", title="x"), "forbids"),
        (Sample(partition_key="p", row_key="r", title="x" * 32769), "64 KiB"),
        (Sample(partition_key="p", row_key="r", title="x", blob=b"\x00" * 65537), "64 KiB"),
    ],
)
def test_limits_azurite_does_not_enforce(repo: TableRepository[Sample], entity: Sample, message: str) -> None:
    with pytest.raises(EntityShapeError, match=message):
        repo.insert(entity)


def test_more_than_252_properties_is_refused(repo: TableRepository[Sample]) -> None:
    from pydantic import create_model

    wide_model = create_model("Wide", __base__=TableEntity, **{f"f{i}": (int, i) for i in range(253)})  # type: ignore[call-overload]
    with pytest.raises(EntityShapeError, match="253 properties"):
        wide_model(partition_key="p", row_key="r").to_entity()
    ok = create_model("Fits", __base__=TableEntity, **{f"f{i}": (int, i) for i in range(252)})  # type: ignore[call-overload]
    assert len(ok(partition_key="p", row_key="r").to_entity()) == 254


class Job(BaseModel):
    member: str
    page: int


def test_queue_messages_are_base64_json(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    name = unique_name("jobs-")
    queue = JobQueue(service, name, Job)
    queue.send(Job(member="m1", page=3))  # creates the queue on first use
    raw = service.get_queue_client(name).receive_message()
    assert raw is not None
    assert json.loads(base64.b64decode(raw.content)) == {"member": "m1", "page": 3}
    assert decode_wire_message(raw.content, Job) == Job(member="m1", page=3)


def test_queue_refuses_wrong_type_and_oversized_messages(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    queue = JobQueue(service, unique_name("jobs-"), Job)
    with pytest.raises(TypeError):
        queue.send(Address(street="s", city="c"))  # type: ignore[arg-type]
    with pytest.raises(MessageTooLarge):
        queue.send(Job(member="m" * 50_000, page=1))


def test_invalid_message_bodies_are_named() -> None:
    with pytest.raises(InvalidMessage, match="Job"):
        decode_message(b'{"member": 1}', Job)
    with pytest.raises(InvalidMessage, match="base64"):
        decode_wire_message("not base64 at all!", Job)


def test_many_threads_reuse_the_accounts_table_connections(azurite, unique_name, caplog) -> None:  # type: ignore[no-untyped-def]
    """Many sync steps of one process read and write tables at once: the account's client keeps
    their connections (the SDK's own pool of 10 dropped every other one after use, and each new
    one is a TLS handshake in Azure)."""
    service = StorageAccount(connection_string=azurite.connection_string).table_service()
    repository = TableRepository(service, unique_name("t"), Sample)
    repository.ensure_table()
    repository.upsert(Sample(partition_key="p", row_key="r", title="x"))
    threads = TABLE_CONNECTIONS // 2
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"), ThreadPoolExecutor(threads) as pool:
        for _ in range(3):
            assert all(pool.map(lambda _: repository.get("p", "r") is not None, range(threads * 4)))
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


class ConnectionFaults(RequestsTransport):
    """The SDK's transport, failing chosen POSTs (or requests of ``method``) as a reset
    connection does: ``before`` the request reaches the service, or ``after`` it was applied,
    its answer lost."""

    def __init__(self, *faults: str, method: str = "POST") -> None:
        super().__init__()
        self.faults = list(faults)
        self.method = method
        self.posts = 0

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        if request.method != self.method:
            return super().send(request, **kwargs)
        self.posts += 1
        if not self.faults:
            return super().send(request, **kwargs)
        fault = self.faults.pop(0)
        if fault == "before":
            raise ServiceRequestError("Connection refused")
        response = super().send(request, **kwargs)
        if fault == "after":
            raise ServiceResponseError("('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))")
        return response


def faulty_repo(azurite, unique_name, *faults: str) -> tuple[TableRepository[Sample], ConnectionFaults]:  # type: ignore[no-untyped-def]
    transport = ConnectionFaults(*faults)
    service = TableServiceClient.from_connection_string(azurite.connection_string, transport=transport)
    repository = TableRepository(service, unique_name("t"), Sample)
    repository.ensure_table()
    return repository, transport


@pytest.mark.parametrize(("faults", "posts"), [(("before",), 2), (("after",), 1), (("before", "after"), 2),
                                               (("after", "after"), 1)])
def test_an_insert_whose_connection_failed_lands_once(azurite, unique_name, faults, posts) -> None:  # type: ignore[no-untyped-def]
    """Not sent: sent again. Applied with its answer lost: read back, not sent again (a second
    insert would be refused as a conflict with itself)."""
    repository, transport = faulty_repo(azurite, unique_name)
    transport.faults, transport.posts = list(faults), 0
    entity = Sample(partition_key="p", row_key="r", title="x", when=datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
                    address=Address(street="1 rue", city="Paris"), tags=["a"])
    stored = repository.insert(entity)
    again = repository.get("p", "r")
    assert again is not None and again.entity == entity and again.etag == stored.etag
    assert transport.posts == posts
    with pytest.raises(EntityAlreadyExists):  # and a real conflict is still one
        repository.insert(entity.model_copy(update={"title": "other"}))


@pytest.mark.parametrize("faults", [("before",), ("after",), ("after", "before")])
def test_a_conditional_transaction_whose_answer_was_lost_is_applied_once(azurite, unique_name, faults) -> None:  # type: ignore[no-untyped-def]
    repository, transport = faulty_repo(azurite, unique_name)
    first = repository.insert(Sample(partition_key="p", row_key="a", title="a", count=1))
    repository.insert(Sample(partition_key="p", row_key="gone", title="gone"))
    transport.faults = list(faults)
    results = repository.transact([
        TableOperation("replace", first.entity.model_copy(update={"count": 2}), first.etag),
        TableOperation("insert", Sample(partition_key="p", row_key="b", title="b")),
        TableOperation("delete", Sample(partition_key="p", row_key="gone", title="gone")),
    ])
    rows = {row.entity.row_key: row for row in repository.query("p")}
    assert sorted(rows) == ["a", "b"] and rows["a"].entity.count == 2
    assert results[0] is not None and results[0].etag == rows["a"].etag and results[2] is None
    # The ETag it gave back is the row's: a write with it is not refused.
    repository.replace(rows["a"].entity.model_copy(update={"count": 3}), results[0].etag)


def overtaken_after_its_answer_is_lost(azurite, unique_name, method: str) -> tuple[TableRepository[Sample], Stored[Sample]]:  # type: ignore[no-untyped-def]
    """A repository whose first ``method`` request is applied, then overtaken by another
    writer (count 9), then loses its answer; and the row ``p/a`` as it was before."""
    repository, transport = faulty_repo(azurite, unique_name)
    first = repository.insert(Sample(partition_key="p", row_key="a", title="a", count=1))
    other = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string),
                            repository.table_name, Sample)
    original_send = transport.send
    lose = [True]

    def overtaken(request, **kwargs):  # type: ignore[no-untyped-def]
        response = original_send(request, **kwargs)
        if request.method == method and lose and lose.pop():
            current = other.get("p", "a")
            assert current is not None
            other.replace(current.entity.model_copy(update={"count": 9}), current.etag)
            raise ServiceResponseError("Connection aborted.")
        return response

    transport.send = overtaken  # type: ignore[method-assign]
    return repository, first


def test_a_transaction_lost_and_overtaken_is_a_conflict_not_a_silent_success(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    """Applied, answer lost, then changed by another writer before it was read back: it is
    not visible as written, so it is sent again and its ETag is refused, as a lost race."""
    repository, first = overtaken_after_its_answer_is_lost(azurite, unique_name, "POST")
    with pytest.raises(ConcurrencyConflict):
        repository.transact([TableOperation("replace", first.entity.model_copy(update={"count": 2}), first.etag)])
    assert (row := repository.get("p", "a")) is not None and row.entity.count == 9


def test_a_post_failing_every_time_raises_after_three_tries(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    repository, transport = faulty_repo(azurite, unique_name)
    transport.faults, transport.posts = ["before"] * 5, 0
    with pytest.raises(ServiceRequestError):
        repository.insert(Sample(partition_key="p", row_key="r", title="x"))
    assert transport.posts == 3 and repository.get("p", "r") is None


def test_a_table_whose_creation_lost_its_answer_is_created_once(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    """Creating a table is a POST too: sent again after a lost answer, it finds the table made."""
    transport = ConnectionFaults("after", "before")
    service = TableServiceClient.from_connection_string(azurite.connection_string, transport=transport)
    repository = TableRepository(service, unique_name("t"), Sample)
    repository.ensure_table()
    assert transport.posts == 3  # applied, answer lost; refused a connection; then "it exists"
    repository.insert(Sample(partition_key="p", row_key="r", title="x"))
    assert repository.get("p", "r") is not None


@pytest.mark.parametrize("faults", [("after",), ("before",), ("after", "after"), ("before", "after")])
def test_a_conditional_replace_whose_answer_was_lost_is_the_write_not_a_conflict(azurite, unique_name, faults) -> None:  # type: ignore[no-untyped-def]
    """A PUT the SDK sends again after a lost answer met its own ETag's change: a 412 for a
    write that landed (a lease taken so then waited out its whole term). Read back instead."""
    repository, transport = faulty_repo(azurite, unique_name)
    first = repository.insert(Sample(partition_key="p", row_key="a", title="a", count=1))
    transport.faults, transport.method, transport.posts = list(faults), "PUT", 0
    written = repository.replace(first.entity.model_copy(update={"count": 2}), first.etag)
    row = repository.get("p", "a")
    assert row is not None and row.entity.count == 2 and written.etag == row.etag
    assert transport.posts == 1 + faults.count("before")  # never sent again once applied
    with pytest.raises(ConcurrencyConflict):  # and a stale ETag is still refused
        repository.replace(first.entity.model_copy(update={"count": 3}), first.etag)


def test_a_replace_lost_and_overtaken_is_a_conflict(azurite, unique_name) -> None:  # type: ignore[no-untyped-def]
    repository, first = overtaken_after_its_answer_is_lost(azurite, unique_name, "PUT")
    with pytest.raises(ConcurrencyConflict):
        repository.replace(first.entity.model_copy(update={"count": 2}), first.etag)
    assert (row := repository.get("p", "a")) is not None and row.entity.count == 9
