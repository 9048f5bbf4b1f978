"""Domain match keys: a HubSpot company's ``domain`` and a Dataverse account's ``websiteurl`` (a whole URL)
reduce to the same host, whatever the scheme, ``www.``, port, path or case; with ``with_name`` the names
must agree too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from consumers.config import MatchRule, NameFields
from consumers.matching import match_key, normalize_domain
from streams.codec import Scalar
from tests.unit import strategies


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("https://www.Example.com/about", "example.com"),
        ("HTTP://user:secret@WWW.example.com:8080/a/b?q=1#top", "example.com"),
        ("//example.com/", "example.com"),
        ("Example.COM:443", "example.com"),
        ("example.com.", "example.com"),
        ("  www.shop.example.co.uk  ", "shop.example.co.uk"),
        ("wwwexample.com", "wwwexample.com"),  # only a whole "www." label goes
        ("www.www.example.com", "example.com"),
    ],
)
def test_domains_normalize(value: str, expected: str) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    "value", ["", "   ", "https://", "www.", "https://www./about", "not a domain", None, 42]
)
def test_empty_or_unhostlike_values_have_no_key(value: Scalar) -> None:
    assert normalize_domain(value) is None


hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z0-9]{1,8}){1,3}", fullmatch=True).filter(
    lambda h: not h.startswith("www.")
)


spellings = st.tuples(
    st.sampled_from(["", "http://", "https://", "HTTPS://", "//"]),
    st.sampled_from(["", "www.", "WWW."]),
    st.sampled_from(["", ":80", ":8443"]),
    st.sampled_from(["", "/", "/about", "/a/b?x=1", "#frag", "?q"]),
)


@given(hosts, spellings, st.booleans())
def test_every_spelling_of_a_website_keys_as_its_host(
    host: str, spelling: tuple[str, str, str, str], upper: bool
) -> None:
    scheme, www, port, path = spelling
    url = f"{scheme}{www}{host}{port}{path}"
    assert normalize_domain(url.upper() if upper else url) == host


@given(strategies.scalars)
def test_normalizing_never_raises_and_is_idempotent(value: Scalar) -> None:
    host = normalize_domain(value)
    assert normalize_domain(host) == host
    assert host is None or (host and not any(c in host for c in "/?#@: \t\n"))


def by_domain(*, with_name: bool = False) -> MatchRule:
    name = NameFields(source="name", target="name") if with_name else None
    return MatchRule(source="domain", target="websiteurl", kind="domain", with_name=name)


def test_a_company_domain_matches_the_account_website_url() -> None:
    company = {"domain": "example.com", "name": "Example"}
    account = {"websiteurl": "https://www.Example.com/about", "name": "Example Ltd"}
    assert match_key(by_domain(), company, side="source") == match_key(by_domain(), account, side="target")
    assert match_key(by_domain(), {"domain": "notexample.com"}, side="source") != "example.com"


def test_with_name_the_names_must_agree_too() -> None:
    rule = by_domain(with_name=True)
    company = {"domain": "example.com", "name": "Example"}
    same = {"websiteurl": "https://example.com", "name": " EXAMPLE "}
    other = {"websiteurl": "https://example.com", "name": "Example Labs"}
    assert match_key(rule, company, side="source") == match_key(rule, same, side="target")
    assert match_key(rule, company, side="source") != match_key(rule, other, side="target")
    assert match_key(rule, {"domain": "example.com"}, side="source") is None  # no name: no key


def test_with_name_goes_with_domain_only() -> None:
    with pytest.raises(ValidationError, match="with_name goes with kind domain"):
        MatchRule(source="name", target="name", kind="name", with_name=NameFields(source="a", target="b"))


@given(hosts, st.text(max_size=20), st.text(max_size=20))
def test_equal_keys_mean_equal_hosts(host: str, a: str, b: str) -> None:
    """The decision: two records match exactly when their hosts are one host (names aside)."""
    left = match_key(by_domain(), {"domain": host + a}, side="source")
    right = match_key(by_domain(), {"websiteurl": host + b}, side="target")
    assert (left == right) == (normalize_domain(host + a) == normalize_domain(host + b))
