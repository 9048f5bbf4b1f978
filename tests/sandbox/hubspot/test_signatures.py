"""`cdc.hubspot.signatures.is_valid` against the fact sheet's vectors (§2.3) and its documented rules."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.hubspot.signatures import is_valid, v3_uri

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://www.example.com/webhook_uri"
DOCS_BODY = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    '"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    '"changeFlag":"NEW","appId":54321}]'
)
QUOTE_BODY = "{'example_field':'example_value'}"


def test_v1_docs_vector() -> None:
    assert len(DOCS_BODY) == 207
    good = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert is_valid(good, SECRET, DOCS_BODY)
    assert is_valid(good, SECRET, DOCS_BODY.encode(), signature_version="v1")
    assert not is_valid(good, SECRET, DOCS_BODY + " ")
    assert not is_valid(good, "other-secret", DOCS_BODY)


def test_v2_docs_vectors() -> None:
    get = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    post = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
    assert is_valid(get, SECRET, "", http_uri=URI, http_method="GET", signature_version="v2")
    body = '{"example_field":"example_value"}'
    assert is_valid(post, SECRET, body, http_uri=URI, http_method="POST", signature_version="v2")
    assert not is_valid(post, SECRET, body, http_uri=URI + "?a=1", signature_version="v2")
    assert not is_valid(post, SECRET, body, signature_version="v2")  # v2 needs the URI


@pytest.mark.parametrize(
    ("version", "method", "prefix", "suffix"),
    [("v1", "POST", "69fc6631", "fa57f750"), ("v2", "POST", "4fe4e3a7", "89a1c383")],
)
def test_sdk_single_quote_vectors(version: str, method: str, prefix: str, suffix: str) -> None:
    source = SECRET + QUOTE_BODY if version == "v1" else SECRET + method + URI + QUOTE_BODY
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest.startswith(prefix)
    assert digest.endswith(suffix)
    assert is_valid(digest, SECRET, QUOTE_BODY, http_uri=URI, http_method=method, signature_version=version)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1693657560000", "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="),
        ("1700000300000", "RnbPH7+UMKVkbV32P8bz450N4M56aPmcru1+D3kSDtw="),
        ("15000000", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="),
    ],
)
def test_v3_sdk_vectors(timestamp: str, expected: str) -> None:
    now = int(timestamp) / 1000 + 10
    assert is_valid(expected, SECRET, QUOTE_BODY, URI, "POST", "v3", timestamp, now=now)
    assert not is_valid(expected, SECRET, QUOTE_BODY, URI, "POST", "v3", timestamp, now=now + 301)
    assert not is_valid(expected, SECRET, QUOTE_BODY + "x", URI, "POST", "v3", timestamp, now=now)


def test_v3_edges() -> None:
    body, timestamp = b"[]", "1700000000000"
    sig = base64.b64encode(
        hmac.new(SECRET.encode(), b"POST" + URI.encode() + body + timestamp.encode(), hashlib.sha256).digest()
    ).decode()
    at = 1_700_000_000.0
    assert is_valid(sig, SECRET, body, URI, "POST", "v3", timestamp, now=at + 300)  # exactly 5 minutes
    assert not is_valid(sig, SECRET, body, URI, "POST", "v3", timestamp, now=at + 300.001)
    assert not is_valid(sig, SECRET, body, URI, "POST", "v3", None, now=at)
    assert not is_valid(sig, SECRET, body, URI, "POST", "v3", "yesterday", now=at)
    assert not is_valid(sig, SECRET, body, URI, "POST", "v4", timestamp, now=at)
    assert not is_valid("", SECRET, body, URI, "POST", "v3", timestamp, now=at)
    assert not is_valid(sig, SECRET, body, URI, "PUT", "v3", timestamp, now=at)


def test_v3_uri_decodes_only_the_listed_escapes() -> None:
    assert (
        v3_uri("https://x.example/a%3Ab%2fc%3F%40%21%24%27%28%29%2A%2C%3B")
        == "https://x.example/a:b/c?@!$'()*,;"
    )
    assert v3_uri("https://x.example/a%20b%26c%3Dd%25") == "https://x.example/a%20b%26c%3Dd%25"
    encoded = "https://x.example/hook%3Ftoken%3Dab"
    body, timestamp = b"[]", "1700000000000"
    decoded_source = b"POST" + b"https://x.example/hook?token%3Dab" + body + timestamp.encode()
    sig = base64.b64encode(hmac.new(b"s", decoded_source, hashlib.sha256).digest()).decode()
    assert is_valid(sig, "s", body, encoded, "POST", "v3", timestamp, now=1_700_000_000)


@given(body=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40), flip=st.integers(0, 299))
def test_v3_any_tampered_byte_fails(body: bytes, secret: str, flip: int) -> None:
    timestamp = "1700000000000"
    source = b"POST" + URI.encode() + body + timestamp.encode()
    sig = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
    assert is_valid(sig, secret, body, URI, "POST", "v3", timestamp, now=1_700_000_001)
    if body:
        index = flip % len(body)
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        assert not is_valid(sig, secret, tampered, URI, "POST", "v3", timestamp, now=1_700_000_001)


@given(body=st.text(max_size=200))
def test_v1_matches_the_documented_formula_for_unicode_bodies(body: str) -> None:
    digest = hashlib.sha256((SECRET + body).encode("utf-8")).hexdigest()
    assert is_valid(digest, SECRET, body)
    assert is_valid(digest, SECRET, body.encode("utf-8"))
    assert not is_valid(digest.upper() if digest != digest.upper() else "0" * 64, SECRET, body)
