"""Certificate credentials of the app registration, and the client assertions signed with them.

An app proves itself with a JWT it signs with a certificate's private key instead of a secret (Learn,
entra/identity-platform/certificate-credentials, "Assertion format"; the token request carries
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and ``client_assertion``,
v2-oauth2-client-creds-grant-flow, "Second case"). The header names the certificate by its thumbprint,
``x5t#S256`` (base64url SHA-256 of the DER certificate, with ``alg`` PS256) or ``x5t`` (SHA-1, RS256); the
claims are ``aud`` = the tenant's v2 token endpoint, ``iss`` = ``sub`` = the client id, ``exp``, ``nbf``,
``jti``, ``iat``. The emulator checks each, in this order, and refuses with Entra's ``invalid_client`` body
and the code the service gives for that fault:

- not a JWT, or ``exp`` missing: 50027 (reference-error-codes, InvalidJwtToken);
- no registered certificate has the thumbprint: 700027, "The certificate with identifier used to sign the
  client assertion is not registered on application. [Reason - The key was not found." (the service's text
  as quoted in Learn Q&A answers);
- ``alg`` not PS256/RS256, or a wrong signature: 700027, "Client assertion failed signature validation"
  (reference-error-codes);
- ``iss`` is not the client id: 700021 (UNVERIFIED: the code as commonly reported; no stored source
  quotes it);
- ``sub`` is not ``iss``: 50048, SubjectMismatchesIssuer (reference-error-codes);
- ``aud`` is not the token endpoint: 700023, "Client assertion audience claim does not match Realm issuer"
  (MSAL.NET issue 2746 quoting the service);
- ``exp`` passed or ``nbf`` ahead: 700024, "Client assertion is not within its valid time range" (MSAL.NET
  issue 4951, Azure/login issue 180).

The 5-minute tolerance is the emulator's (the usual skew of Entra's token checks; not documented for
assertions). Signatures are checked with ``cryptography`` directly: RS256 is RSASSA-PKCS1-v1_5 with SHA-256,
PS256 RSASSA-PSS with SHA-256, MGF1 SHA-256 and a 32-byte salt (RFC 7518 §3.3, §3.5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["JWT_BEARER", "AssertionRefused", "KeyCredentials", "Registered"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_S = 300.0
_PSS_SALT = 32  # RFC 7518 §3.5: the salt is as long as the hash


class AssertionRefused(Exception):  # noqa: N818 -- what the token endpoint does, not an error of ours
    """The token endpoint's refusal: ``invalid_client`` (401) with an AADSTS code and its description."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Registered:
    """A certificate uploaded to the app registration (a key credential)."""

    certificate: x509.Certificate
    sha1: str
    """Upper-case hex, as the Azure portal shows it."""
    sha256: str

    def as_json(self) -> dict[str, str]:
        return {
            "thumbprint": self.sha1,
            "sha256": self.sha256,
            "subject": self.certificate.subject.rfc4514_string(),
            "not_after": self.certificate.not_valid_after_utc.isoformat(),
        }


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _thumb(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _malformed() -> AssertionRefused:
    return AssertionRefused(50027, "JWT token is invalid or malformed.")


def _parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    pieces = assertion.split(".")
    if len(pieces) != 3:  # noqa: PLR2004 -- header, payload, signature
        raise _malformed()
    try:
        header, claims = orjson.loads(_b64url(pieces[0])), orjson.loads(_b64url(pieces[1]))
        signature = _b64url(pieces[2])
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _malformed() from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _malformed()
    return header, claims, f"{pieces[0]}.{pieces[1]}".encode("ascii"), signature


def _verify_signature(key: rsa.RSAPublicKey, algorithm: str, signed: bytes, signature: bytes) -> None:
    scheme: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_PSS_SALT)
        if algorithm == "PS256"
        else padding.PKCS1v15()
    )
    try:
        key.verify(signature, signed, scheme, hashes.SHA256())
    except InvalidSignature:
        raise AssertionRefused(700027, "Client assertion failed signature validation.") from None


def _stamp(value: datetime | float) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class KeyCredentials:
    """The certificates registered for the app, looked up by either thumbprint. Thread-safe."""

    def __init__(self) -> None:
        self._items: dict[str, Registered] = {}
        self._lock = threading.Lock()

    def add(self, pem: str) -> Registered:
        """Register the certificate of ``pem`` (a key in the same text is ignored, as the portal does);
        ValueError when it holds none or its key is not RSA."""
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise ValueError("certificate credentials take RSA keys only")
        der = certificate.public_bytes(serialization.Encoding.DER)
        registered = Registered(
            certificate,
            hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
            hashlib.sha256(der).hexdigest().upper(),
        )
        with self._lock:
            self._items[registered.sha1] = registered
        return registered

    def remove(self, thumbprint: str) -> bool:
        with self._lock:
            return self._items.pop(thumbprint.replace(":", "").upper(), None) is not None

    def listing(self) -> list[dict[str, str]]:
        with self._lock:
            return [item.as_json() for item in self._items.values()]

    def _find(self, header: dict[str, Any]) -> Registered | None:
        """The certificate a header's thumbprint names. msal pads its base64url (``=``), which RFC 7515
        leaves out; Entra takes msal's assertions, so both forms are taken."""
        sha256, sha1 = header.get("x5t#S256"), header.get("x5t")
        with self._lock:
            for item in self._items.values():
                if isinstance(sha256, str) and sha256.rstrip("=") == _thumb(bytes.fromhex(item.sha256)):
                    return item
                if isinstance(sha1, str) and sha1.rstrip("=") == _thumb(bytes.fromhex(item.sha1)):
                    return item
        return None

    def verify(self, assertion: str, *, client_id: str, token_endpoint: str, now: float) -> None:
        """Accept ``assertion`` for ``client_id`` at ``token_endpoint`` or raise :class:`AssertionRefused`
        (module docstring, in the order checked)."""
        header, claims, signed, signature = _parts(assertion)
        registered = self._find(header)
        if registered is None:
            shown = header.get("x5t#S256") or header.get("x5t") or ""
            raise AssertionRefused(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                "application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{shown}']",
            )
        algorithm = header.get("alg")
        public_key = registered.certificate.public_key()
        if algorithm not in {"PS256", "RS256"} or not isinstance(public_key, rsa.RSAPublicKey):
            raise AssertionRefused(700027, "Client assertion failed signature validation.")
        _verify_signature(public_key, str(algorithm), signed, signature)
        issuer = claims.get("iss")
        if issuer != client_id:
            raise AssertionRefused(
                700021, "Client assertion application identifier doesn't match 'client_id' parameter."
            )
        if claims.get("sub") != issuer:
            raise AssertionRefused(50048, "Subject mismatches Issuer claim in the client assertion.")
        if claims.get("aud") != token_endpoint:
            raise AssertionRefused(700023, "Client assertion audience claim does not match Realm issuer.")
        expires, not_before = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(expires, int | float) or not isinstance(not_before, int | float):
            raise _malformed()
        if now >= expires + CLOCK_SKEW_S or now + CLOCK_SKEW_S < not_before:
            raise AssertionRefused(
                700024,
                "Client assertion is not within its valid time range. "
                f"Current time: {_stamp(now)}, assertion valid from {_stamp(not_before)}, "
                f"expiry time of assertion {_stamp(expires)}.",
            )
