"""Secrets at rest (issue 10, Security): after a whole install and two-way sync run, with the
Functions host as its own process, no token is stored in plaintext in Table Storage and none
appears in the logs.

Read with azure-data-tables directly (not through the product's repositories): every entity
of every table of the run. The tokens looked for are the member's CRM refresh token (decrypted
from its row with the run's key), any CRM token of the emulator's shape (``1000.<hex>.<hex>``),
any JWT (Graph app tokens, id tokens) and the run's own secrets (client secrets, keys).
There is no persisted MSAL cache: app tokens live in the process's memory only (checked below:
no table holds a JWT)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from cryptography.fernet import Fernet

from shared.sync.profiles import SyncKind
from shared.wiring import get_services
from tests.integration.sync_setup import linked_member
from tests.integration.test_sync_reliability import emulators, generate, settle, stack
from tests.product_stack import ProductStack

__all__ = ["emulators", "stack"]

CRM_TOKEN = re.compile(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def _raw_tables(prefix: str) -> dict[str, list[str]]:
    service = TableServiceClient.from_connection_string(get_services().settings.storage_connection_string or "")
    found: dict[str, list[str]] = {}
    for table in service.list_tables():
        if table.name.startswith(prefix):
            client = service.get_table_client(table.name)
            found[table.name] = [json.dumps(dict(entity), default=str) for entity in client.list_entities()]
    return found


def _secrets_of_the_run() -> list[str]:
    s = get_services().settings
    return [v for v in (s.entra_client_secret, s.crm_client_secret, s.token_encryption_key, s.session_secret) if v]


def test_tokens_are_encrypted_in_table_storage_and_never_logged(
    stack: ProductStack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    product = stack
    member = linked_member(product)
    generate(product, SyncKind.CONTACTS, 40)
    generate(product, SyncKind.CALENDAR, 40)
    services = get_services()
    for kind in (SyncKind.CONTACTS, SyncKind.CALENDAR):
        services.sync.enable(member, kind)
    for kind in (SyncKind.CONTACTS, SyncKind.CALENDAR):
        settle(product, member, kind, 40, timeout=180)

    # The member's CRM refresh token is stored, encrypted with the run's key.
    stored = services.accounts.member_of(member.tenant_id, member.object_id)
    assert stored is not None and stored.refresh_token_encrypted
    refresh_token = services.cipher.decrypt(stored.refresh_token_encrypted)
    assert CRM_TOKEN.fullmatch(refresh_token), "the emulator's refresh token shape changed: update CRM_TOKEN"
    key = Fernet(services.settings.token_encryption_key.split(",")[0].encode())  # type: ignore[union-attr]
    assert key.decrypt(stored.refresh_token_encrypted.encode()).decode() == refresh_token

    # No table of the run holds a token or a secret in plaintext.
    tables = _raw_tables(services.settings.table_prefix)
    assert any(name.endswith("members") for name in tables) and sum(len(rows) for rows in tables.values()) > 80
    secrets = [refresh_token, *_secrets_of_the_run()]
    for name, rows in tables.items():
        for row in rows:
            for secret in secrets:
                assert secret not in row, f"a secret in plaintext in table {name}"
            assert not CRM_TOKEN.search(row), f"a CRM token in plaintext in table {name}: {row[:200]}"
            assert not JWT.search(row), f"a JWT (Graph or id token) in plaintext in table {name}: {row[:200]}"

    # Neither the host's log (every request, sync step and webhook of the run) nor this process's.
    host_log = (tmp_path / "host.log").read_text(encoding="utf-8", errors="replace")
    # (an initial sync and its first round run on sync-bulk; later rounds on sync-jobs)
    assert "Functions.sync_bulk_step" in host_log and "Functions.graph_webhook" in host_log
    logs = {"host": host_log, "test process": caplog.text}
    for where, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {where} log"
        assert not CRM_TOKEN.search(text), f"a CRM token in the {where} log"
        assert not JWT.search(text), f"a JWT in the {where} log"
        assert "Zoho-oauthtoken " not in text and "Bearer ey" not in text, f"an Authorization header in the {where} log"
