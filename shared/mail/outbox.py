"""The outbox: e-mails are queued (``mail-outbox``) so pages answer fast and sending is
retried by the host; the worker sends each through Graph ``sendMail`` from the given
mailbox, at most once per message id as far as our records go."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from shared.graph.client import GraphClient
from shared.identity.token_cipher import TokenCipher
from shared.storage import JobQueue, TableEntity, TableRepository, decode_message
from shared.storage.queues import InvalidMessage

OUTBOX_QUEUE = "mail-outbox"
IN_CALL_ATTEMPTS = 3


class OutboxMessage(BaseModel):
    """One e-mail to send. ``message_id`` makes sending idempotent."""

    version: int = 1
    message_id: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    tenant_id: str
    sender: str  # the mailbox that sends: user id or userPrincipalName in that tenant
    to_email: str
    to_name: str = ""
    subject: str = Field(max_length=255)
    html: str
    text: str


class MailBody(BaseModel):
    html: str
    text: str


class SealedOutboxMessage(BaseModel):
    """The queue message: an OutboxMessage whose body is encrypted with the tokens' key.
    Bodies carry live single-use links (invitations, approvals) that the links table keeps
    only as hashes; in clear they would sit in ``mail-outbox`` and its poison queue for
    anyone who can read the storage account (issue 18 §5). The rest stays readable for
    operators (the poison view shows who, what and when)."""

    version: int = 2
    message_id: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    tenant_id: str
    sender: str
    to_email: str
    to_name: str = ""
    subject: str = Field(max_length=255)
    sealed_body: str  # Fernet token of MailBody's JSON


class SentMail(TableEntity):
    """A message Graph accepted (PartitionKey = tenant, RowKey = message id)."""

    sent_at: datetime
    to_email: str
    subject: str


class MailFailure(TableEntity):
    """A message that failed its last delivery attempt (PartitionKey = tenant, RowKey = message
    id): the host moves it to the poison queue, and the Users page says the invitation was not
    delivered instead of leaving it "pending" (issue 23)."""

    failed_at: datetime
    to_email: str
    subject: str
    error: str


# host.json ``extensions.queues.maxDequeueCount``: the attempt after which the host poisons a message.
DELIVERY_ATTEMPTS = 5


class Outbox:
    def __init__(self, queue: JobQueue[SealedOutboxMessage], cipher: TokenCipher) -> None:
        self._queue = queue
        self._cipher = cipher

    def enqueue(self, message: OutboxMessage) -> None:
        body = MailBody(html=message.html, text=message.text).model_dump_json()
        self._queue.send(SealedOutboxMessage(
            **message.model_dump(exclude={"version", "html", "text"}), sealed_body=self._cipher.encrypt(body)
        ))

    def unseal(self, raw: bytes | str) -> OutboxMessage:
        """The e-mail a queue message carries; InvalidMessage if it is not one of ours (or its
        body does not open with our keys): the host then poisons it."""
        sealed = decode_message(raw, SealedOutboxMessage)
        try:
            body = MailBody.model_validate_json(self._cipher.decrypt(sealed.sealed_body))
        except ValueError as error:  # a wrong key (TokenCipher) or not a MailBody (ValidationError)
            raise InvalidMessage(f"the body of mail {sealed.message_id} does not open") from error
        return OutboxMessage(**sealed.model_dump(exclude={"version", "sealed_body"}), html=body.html, text=body.text)


class MailSender:
    def __init__(
        self,
        graph_for: Callable[[str], GraphClient],
        sent: TableRepository[SentMail],
        failures: TableRepository[MailFailure],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._graph_for = graph_for
        self._sent = sent
        self._failures = failures
        self._now = clock

    def record_failure(self, message: OutboxMessage, error: Exception) -> None:
        """The last attempt failed: remember it for the people who sent it."""
        self._failures.upsert(MailFailure(
            partition_key=message.tenant_id, row_key=message.message_id, failed_at=self._now(),
            to_email=message.to_email, subject=message.subject, error=str(error)[:300],
        ))

    def failure_of(self, tenant_id: str, message_id: str) -> MailFailure | None:
        stored = self._failures.get(tenant_id, message_id)
        return stored.entity if stored else None

    def deliver(self, message: OutboxMessage) -> bool:
        """Send unless already sent; returns False for a repeat. Raises GraphError /
        GraphUnavailable when Graph refuses, so the host retries and finally poisons it."""
        if self._sent.get(message.tenant_id, message.message_id) is not None:
            return False
        payload = {
            "message": {
                "subject": message.subject,
                "body": {"contentType": "HTML", "content": message.html},
                "toRecipients": [{"emailAddress": {"address": message.to_email, "name": message.to_name}}],
                "internetMessageHeaders": [{"name": "X-CRM365-Message-Id", "value": message.message_id}],
            },
            "saveToSentItems": True,
        }
        # A few quick retries here (throttling is usually short); beyond them the queue's own
        # redelivery takes over, up to maxDequeueCount, then the poison queue.
        self._graph_for(message.tenant_id).request(
            "POST", f"/users/{message.sender}/sendMail", json=payload, idempotent=True, attempts=IN_CALL_ATTEMPTS
        )
        self._failures.delete(message.tenant_id, message.message_id)  # an operator replayed it: delivered now
        self._sent.upsert(
            SentMail(
                partition_key=message.tenant_id,
                row_key=message.message_id,
                sent_at=self._now(),
                to_email=message.to_email,
                subject=message.subject,
            )
        )
        return True
