"""Secrets at rest (CRM refresh tokens, token caches): Fernet, keyed from settings locally
and from Key Vault in Azure. Several comma-separated keys allow rotation: the first
encrypts, all decrypt."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenCipher:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("TOKEN_ENCRYPTION_KEY is empty")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as error:
            raise ValueError("a stored secret could not be decrypted (wrong or rotated-out key)") from error

    def __repr__(self) -> str:  # never show keys in logs or tracebacks
        return "TokenCipher(<redacted>)"
