"""The token signing key (RS256) and its JWKS, as served at /discovery/v2.0/keys."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class SigningKey:
    def __init__(self, state_dir: Path):
        # Kept across restarts so tokens a client holds stay verifiable after a restart.
        path = Path(state_dir) / "m365-signing-key.pem"
        if path.exists():
            self.private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        else:
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            path.chmod(0o600)
        self.public_key = self.private_key.public_key()
        der = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # Entra's kid and x5t are the certificate thumbprint; a key thumbprint plays that role here.
        self.kid = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode().rstrip("=")

    def jwks(self) -> dict:
        numbers = self.public_key.public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": _b64url_uint(numbers.n),
                          "e": _b64url_uint(numbers.e), "alg": "RS256"}]}
