"""The wire format of our entity-group transactions (``shared.storage.entity_group``), apart
from any service: what the request says, and how answers of every shape the service documents
are read (Azurite's are held in ``tests/integration/test_storage_contract.py``)."""

from __future__ import annotations

import json

import pytest
from azure.data.tables import EdmType, EntityProperty
from hypothesis import given
from hypothesis import strategies as st

from shared.storage.entity_group import Write, decode, encode

TABLE = "https://acct.table.core.windows.net/links"


def _changeset(body: bytes, content_type: str) -> list[tuple[list[str], dict[str, object] | None]]:
    """The request's operations as (request line and headers, JSON body or None), read back with
    nothing but its boundaries: what the service does."""
    batch = content_type.split("boundary=")[1]
    outer = body.decode().split(f"--{batch}")[1]
    head, _, inner = outer.partition("\r\n\r\n")
    changeset = head.split("boundary=")[1].strip()
    operations = []
    for part in inner.split(f"--{changeset}")[1:-1]:
        _, _, http = part.strip("\r\n").partition("\r\n\r\n")
        request, _, content = http.partition("\r\n\r\n")
        lengths = [int(line.split(":")[1]) for line in request.split("\r\n") if line.startswith("Content-Length:")]
        assert lengths == ([len(content.encode())] if content.strip() else [])
        operations.append((request.split("\r\n"), json.loads(content) if content.strip() else None))
    assert inner.split(f"--{changeset}")[-1].startswith("--")
    return operations


def test_each_write_becomes_the_request_the_service_documents() -> None:
    body, content_type = encode(TABLE, [
        Write("POST", {"PartitionKey": "p", "RowKey": "new", "count": 3}),
        Write("PUT", {"PartitionKey": "p", "RowKey": "it's", "big": EntityProperty(2**40, EdmType.INT64)}),
        Write("PUT", {"PartitionKey": "p|q", "RowKey": "100%"}, if_match='W/"datetime\'2026-12-07T13%3A23%3A53.18Z\'"'),
        Write("DELETE", {"PartitionKey": "p", "RowKey": "gone"}, if_match="*"),
    ])
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    (insert, insert_body), (upsert, upsert_body), (replace, _), (delete, delete_body) = _changeset(body, content_type)
    assert insert[0] == f"POST {TABLE} HTTP/1.1" and "Prefer: return-no-content" in insert
    assert insert_body == {"PartitionKey": "p", "PartitionKey@odata.type": "Edm.String", "RowKey": "new",
                           "RowKey@odata.type": "Edm.String", "count": 3}
    assert upsert[0] == f"PUT {TABLE}(PartitionKey='p',RowKey='it%27%27s') HTTP/1.1"
    assert not any(line.startswith("If-Match") for line in upsert)  # insert or replace
    assert upsert_body is not None and upsert_body["big"] == "1099511627776" and upsert_body["big@odata.type"] == "Edm.Int64"
    assert replace[0] == f"PUT {TABLE}(PartitionKey='p%7Cq',RowKey='100%25') HTTP/1.1"
    assert "If-Match: W/\"datetime'2026-12-07T13%3A23%3A53.18Z'\"" in replace
    assert delete[0].startswith("DELETE ") and "If-Match: *" in delete and delete_body is None


@given(st.text(min_size=1, max_size=40), st.text(max_size=200))
def test_no_value_can_break_out_of_its_part(key: str, value: str) -> None:
    body, content_type = encode(TABLE, [Write("PUT", {"PartitionKey": "p", "RowKey": key, "v": value}),
                                        Write("PUT", {"PartitionKey": "p", "RowKey": "after", "v": ""})])
    operations = _changeset(body, content_type)
    assert len(operations) == 2
    assert operations[0][1] is not None and operations[0][1]["v"] == value and operations[0][1]["RowKey"] == key


def _answer(*parts: str, changeset: bool = True, quote: str = "") -> tuple[bytes, str]:
    inner = "".join(f"--changesetresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{p}\r\n"
                    for p in parts) + "--changesetresponse_1--\r\n"
    if changeset:
        outer = f"--batchresponse_9\r\nContent-Type: multipart/mixed; boundary={quote}changesetresponse_1{quote}\r\n\r\n{inner}"
    else:  # the whole request refused: one part of its own, outside any changeset
        outer = "".join(f"--batchresponse_9\r\nContent-Type: application/http\r\n\r\n{p}\r\n" for p in parts)
    return (outer + "--batchresponse_9--\r\n").encode(), f"multipart/mixed; boundary={quote}batchresponse_9{quote}"


def test_the_answers_of_a_changeset_that_succeeded_carry_each_etag() -> None:
    body, content_type = _answer("HTTP/1.1 204 No Content\r\nETag: W/\"1\"\r\nDataServiceVersion: 3.0;\r\n\r\n",
                                 "HTTP/1.1 201 Created\r\nETag: W/\"2\"\r\nContent-Type: application/json\r\n\r\n{\"RowKey\":\"x\"}",
                                 quote='"')
    answers = decode(body, content_type)
    assert [(a.status, a.headers["etag"]) for a in answers] == [(204, 'W/"1"'), (201, 'W/"2"')]
    assert answers[1].body == b'{"RowKey":"x"}'


@pytest.mark.parametrize("changeset", [True, False])
def test_a_refused_changeset_answers_with_the_failing_operation_alone(changeset: bool) -> None:
    error = {"odata.error": {"code": "UpdateConditionNotSatisfied", "message": {"lang": "en-US", "value": "2:The condition specified"}}}
    body, content_type = _answer(f"HTTP/1.1 412 Precondition Failed\r\nContent-ID: 3\r\nContent-Type: application/json\r\n\r\n{json.dumps(error)}",
                                 changeset=changeset)
    [answer] = decode(body, content_type)
    assert answer.status == 412
    assert answer.error() == ("UpdateConditionNotSatisfied", "2:The condition specified")


def test_an_answer_that_is_no_transaction_answer_is_refused() -> None:
    with pytest.raises(ValueError):
        decode(b"<html>gateway</html>", "multipart/mixed; boundary=b")
    with pytest.raises(ValueError):
        decode(b"--b\r\nContent-Type: application/http\r\n\r\nnot http\r\n--b--", "multipart/mixed; boundary=b")
    with pytest.raises(ValueError):
        decode(b"", "application/json")
