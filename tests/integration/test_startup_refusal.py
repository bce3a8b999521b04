"""Issue 22: the app refuses to start on an unresolved Key Vault reference.

When App Service cannot resolve ``@Microsoft.KeyVault(SecretUri=...)`` (the secret is not in the
vault yet, or the identity may not read it) the app setting reaches the worker as that literal
text. The Functions host (here ``python -m local.host``, which imports ``function_app.py`` as the
worker does) must not index an app that would sign cookies with it: it stops, and what it prints
names the setting."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from cryptography.fernet import Fernet

from tests.integration.host_process import free_port

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-abc123.vault.azure.net/secrets/session-secret)"


def _start_host(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"SESSION_SECRET", "TOKEN_ENCRYPTION_KEY",
                                                            "ENTRA_CLIENT_SECRET", "CRM_CLIENT_SECRET"}},
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SESSION_SECRET": uuid.uuid4().hex * 2,
        **overrides,
    }
    # The host never gets as far as listening; if it did, the timeout ends it (and the test fails).
    return subprocess.run([sys.executable, "-m", "local.host", "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_unresolved_key_vault_reference_stops_the_app_naming_the_setting() -> None:
    refused = _start_host(SESSION_SECRET=REFERENCE)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "SESSION_SECRET: is an unresolved Key Vault reference" in output
    assert "Host started" not in output


def test_a_secret_too_short_to_be_right_stops_the_app_naming_it() -> None:
    refused = _start_host(CRM_CLIENT_SECRET="changeme")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "CRM_CLIENT_SECRET: must be at least 16 characters" in output
    assert "changeme" not in output.replace("CRM_CLIENT_SECRET", "")
