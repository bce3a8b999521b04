"""The emulator's TLS material: a local CA (kept across restarts) and a leaf for loopback.

MSAL refuses plain http authorities, so the emulator speaks HTTPS; clients trust the CA
by configuration (``verify=<ca>``), never by disabling verification.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT_NAME = "m365-ca.pem"
CA_KEY_NAME = "m365-ca-key.pem"


@dataclass
class TlsMaterial:
    ca_cert_path: Path
    leaf_cert_path: Path
    leaf_key_path: Path
    leaf_spki_sha256_b64: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.leaf_cert_path), str(self.leaf_key_path))
        return context


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_or_create_ca(state_dir: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    cert_path, key_path = state_dir / CA_CERT_NAME, state_dir / CA_KEY_NAME
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
            return cert, key  # type: ignore[return-value]
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "M365 emulator local CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def prepare_tls(state_dir: Path) -> TlsMaterial:
    """Reuse (or create) the CA under ``state_dir`` and issue a fresh leaf for 127.0.0.1/localhost."""
    state_dir = Path(state_dir)
    ca_cert, ca_key = _load_or_create_ca(state_dir)
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_cert_path = state_dir / "m365-leaf.pem"
    leaf_key_path = state_dir / "m365-leaf-key.pem"
    leaf_cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    leaf_key_path.write_bytes(_pem_key(key))
    leaf_key_path.chmod(0o600)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TlsMaterial(
        ca_cert_path=state_dir / CA_CERT_NAME,
        leaf_cert_path=leaf_cert_path,
        leaf_key_path=leaf_key_path,
        leaf_spki_sha256_b64=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )
