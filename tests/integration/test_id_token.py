"""Our own checks of Microsoft id tokens (MSAL 1.38+ does not validate them), against the
Microsoft 365 emulator's real tokens and keys."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators.m365.server import RunningM365, start
from local.demo_world import APP_REGISTRATION
from shared.identity.id_token import IdTokenVerifier, InvalidIdToken

ROOT = Path(__file__).resolve().parents[2]
CONTOSO = "7c1e2b8a-3f4d-4e5a-9b6c-0d1e2f3a4b5c"
NONCE = "the-nonce-we-sent"


@pytest.fixture(scope="module")
def m365(tmp_path_factory) -> Iterator[RunningM365]:  # type: ignore[no-untyped-def]
    running = start(port=0, seed=ROOT / "emulators/m365/seed/demo.json", state_dir=tmp_path_factory.mktemp("m365"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def session(m365: RunningM365) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = str(m365.ca_cert_path)
    # The password grant needs consent, as in Entra: grant it for Contoso as an admin would.
    s.post(
        f"{m365.base_url}/__emulator/consents",
        json={"tenantId": CONTOSO, "clientId": APP_REGISTRATION["client_id"], "kind": "admin"},
        timeout=10,
    ).raise_for_status()
    return s


def id_token(m365: RunningM365, session: requests.Session, email: str, password: str) -> str:
    """A real id token, through the password grant (scripts and tests acting as a user)."""
    response = session.post(
        f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": APP_REGISTRATION["client_id"],
            "client_secret": APP_REGISTRATION["client_secret"],
            "username": email,
            "password": password,
            "scope": "openid profile User.Read",
            "nonce": hashlib.sha256(NONCE.encode()).hexdigest(),
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id_token"])


def verifier(m365: RunningM365, session: requests.Session, client_id: str = APP_REGISTRATION["client_id"]) -> IdTokenVerifier:
    return IdTokenVerifier(m365.base_url, client_id, session)


def test_a_genuine_token_is_accepted_with_its_roles(m365: RunningM365, session: requests.Session) -> None:
    claims = verifier(m365, session).verify(id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1"), nonce=None)
    assert claims.tenant_id == CONTOSO
    assert claims.email == "adele@contoso.test"
    assert claims.is_consent_admin
    assert claims.email_domain_verified is True  # the demo registration asks for xms_edov (docs/deploy.md)
    megan = verifier(m365, session).verify(id_token(m365, session, "megan@contoso.test", "Contoso-Demo-1"), nonce=None)
    assert not megan.is_consent_admin


def test_a_token_for_another_application_is_refused(m365: RunningM365, session: requests.Session) -> None:
    token = id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1")
    with pytest.raises(InvalidIdToken, match="another application"):
        verifier(m365, session, client_id="00000000-0000-0000-0000-000000000001").verify(token, nonce=None)


def test_a_token_edited_to_name_another_tenant_is_refused(m365: RunningM365, session: requests.Session) -> None:
    header, payload, signature = id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tid"] = "3d9a4c2e-8b7f-4a61-9e0d-5c4b3a291807"
    claims["iss"] = claims["iss"].replace(CONTOSO, claims["tid"])
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(InvalidIdToken):
        verifier(m365, session).verify(f"{header}.{edited}.{signature}", nonce=None)


def test_a_token_signed_with_another_key_is_refused(m365: RunningM365, session: requests.Session) -> None:
    genuine = jwt.decode(id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1"), options={"verify_signature": False})
    kid = jwt.get_unverified_header(id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1"))["kid"]
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**genuine, "exp": int(time.time()) + 600}, attacker_key, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(InvalidIdToken, match="could not be verified"):
        verifier(m365, session).verify(forged, nonce=None)


def test_an_expired_token_is_refused(m365: RunningM365, session: requests.Session) -> None:
    token = id_token(m365, session, "adele@contoso.test", "Contoso-Demo-1")
    claims = jwt.decode(token, options={"verify_signature": False})
    later = IdTokenVerifier(m365.base_url, APP_REGISTRATION["client_id"], session, clock=lambda: claims["exp"] + 3600)
    with pytest.raises(InvalidIdToken, match="expired"):
        later.verify(token, nonce=None)


def test_a_token_for_another_sign_in_is_refused() -> None:
    """The nonce: an id token minted for another sign-in (replayed into ours) is refused.
    The password grant carries no nonce, so this one is signed here and its keys served
    through a transport adapter standing in for the identity platform."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}
    issuer = f"https://idp.test/{CONTOSO}/v2.0"
    documents = {
        f"https://idp.test/{CONTOSO}/v2.0/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": "https://idp.test/keys"},
        "https://idp.test/keys": {"keys": [jwk]},
    }

    class IdentityPlatform(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            response = requests.Response()
            response.status_code = 200
            response._content = json.dumps(documents[request.url]).encode()
            response.url = request.url
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://idp.test/", IdentityPlatform())
    now = int(time.time())
    claims = {"iss": issuer, "aud": "app", "tid": CONTOSO, "oid": "o1", "iat": now, "exp": now + 600,
              "nonce": hashlib.sha256(b"ours").hexdigest(), "preferred_username": "adele@contoso.test"}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    checker = IdTokenVerifier("https://idp.test", "app", session)
    assert checker.verify(token, nonce="ours").email == "adele@contoso.test"
    with pytest.raises(InvalidIdToken, match="nonce"):
        checker.verify(token, nonce="another sign-in")
