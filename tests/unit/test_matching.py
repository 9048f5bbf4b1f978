"""Match keys: emails and names normalize the same way on both sides, whatever the case, spacing or form."""

from __future__ import annotations

import unicodedata
from typing import Literal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from consumers.config import MatchRule
from consumers.matching import LEGAL_SUFFIXES, match_key, normalize_email, normalize_name
from streams.codec import Scalar
from tests.unit import strategies


def fullwidth(text: str) -> str:
    """The fullwidth forms of ASCII, as East Asian keyboards type them; NFKC maps them back."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# -- email


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jane@example.com", "jane@example.com"),
        ("  Jane.Doe@Example.COM\t", "jane.doe@example.com"),
        (fullwidth("jane@example") + ".com", "jane@example.com"),  # fullwidth, NFKC
        ("STRASSE@example.de", "strasse@example.de"),
        ("Straße@example.de", "strasse@example.de"),  # case folding, not just lower()
        ("a@b", "a@b"),
    ],
)
def test_emails_normalize(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "jane", "@example.com", "jane@", "@", "jane@@example.com", "a@b@c",
     "jane doe@example.com", "jane@exa mple.com", 42, True, 1.5],
)  # fmt: skip
def test_implausible_emails_have_no_key(value: Scalar) -> None:
    assert normalize_email(value) is None


# -- names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme", "acme"),
        ("  ACME   Widgets\tLtd ", "acme widgets ltd"),
        (fullwidth("Acme"), "acme"),  # fullwidth
        ("ﬁne Foods", "fine foods"),  # ligature, NFKC
        ("Müller", "müller"),
        ("Mu\u0308ller", "müller"),  # decomposed umlaut composes
    ],
)
def test_names_normalize(value: str, expected: str) -> None:
    assert normalize_name(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme, Inc.", "acme"),
        ("Acme Inc", "acme"),
        ("Acme,Inc.", "acme"),
        ("ACME LLC", "acme"),
        ("Acme L.L.C.", "acme"),
        ("Acme Ltd.", "acme"),
        ("Acme Limited", "acme"),
        ("Acme GmbH", "acme"),
        ("Acme AG", "acme"),
        ("Acme S.A.", "acme"),
        ("Acme SAS", "acme"),
        ("Acme B.V.", "acme"),
        ("Acme plc", "acme"),
        ("Acme Corp", "acme"),
        ("Acme Corp.", "acme"),
        ("Acme Corporation", "acme"),
        ("Acme Co.", "acme"),
        ("Acme Holdings Co., Ltd.", "acme holdings"),  # several, from the end
        ("Acme Inc. Europe", "acme inc. europe"),  # only trailing ones
        ("Zinc", "zinc"),  # a word that ends like a suffix is no suffix
        ("Broco", "broco"),
        ("Inc.", "inc."),  # never down to nothing
        ("Co Inc", "co"),
        (", Inc", ", inc"),
    ],
)
def test_legal_suffixes_are_stripped_when_asked(value: str, expected: str) -> None:
    assert normalize_name(value, strip_legal_suffixes=True) == expected
    assert normalize_name(value) == " ".join(unicodedata.normalize("NFKC", value).casefold().split())


@pytest.mark.parametrize("value", [None, "", "  \u3000 ", 42, False, 2.5])
def test_empty_or_non_text_names_have_no_key(value: Scalar) -> None:
    assert normalize_name(value) is None
    assert normalize_name(value, strip_legal_suffixes=True) is None


# -- match keys


def rule(kind: Literal["email", "name"], *, strip: bool = False) -> MatchRule:
    source, target = ("email", "emailaddress1") if kind == "email" else ("name", "name")
    return MatchRule(source=source, target=target, kind=kind, strip_legal_suffixes=strip)


def test_match_keys_read_the_side_the_rule_names() -> None:
    by_email = rule("email")
    hubspot = {"email": " Jane@Example.com ", "emailaddress1": "other@example.com"}
    dataverse = {"emailaddress1": "jane@example.COM"}
    assert match_key(by_email, hubspot, side="source") == "jane@example.com"
    assert match_key(by_email, dataverse, side="target") == "jane@example.com"
    assert match_key(by_email, {}, side="source") is None
    assert match_key(by_email, {"email": "not an email"}, side="source") is None


def test_name_match_keys_honour_suffix_stripping() -> None:
    company, account = {"name": "Acme, Inc."}, {"name": "ACME"}
    assert match_key(rule("name"), company, side="source") != match_key(rule("name"), account, side="target")
    stripping = rule("name", strip=True)
    assert (
        match_key(stripping, company, side="source") == match_key(stripping, account, side="target") == "acme"
    )
    assert match_key(stripping, {"name": None}, side="target") is None


# -- properties

any_text = st.text(st.characters(exclude_categories=()), max_size=40)
spaces = st.text(st.sampled_from(" \t\n\u00a0\u3000"), min_size=1, max_size=3)
suffixes = st.sampled_from(
    [
        "Inc",
        "Inc.",
        "LLC",
        "Ltd",
        "Ltd.",
        "GmbH",
        "AG",
        "S.A.",
        "SAS",
        "B.V.",
        "plc",
        "Corp",
        "Corporation",
        "Co.",
    ]
)
# Letters whose case maps are plain: Unicode case mapping is not invertible for all (e.g. dotless i).
plain_letters = st.text(
    st.characters(codec="latin-1", categories=["Lu", "Ll", "Nd", "Zs", "Po"]), max_size=30
)


@given(any_text, st.booleans())
def test_normalizing_never_raises_and_is_idempotent(value: str, strip: bool) -> None:
    name = normalize_name(value, strip_legal_suffixes=strip)
    assert normalize_name(name, strip_legal_suffixes=strip) == name
    assert name is None or (name == name.strip() and name)
    email = normalize_email(value)
    assert normalize_email(email) == email


@given(strategies.scalars)
def test_any_scalar_is_a_key_or_none(value: Scalar) -> None:
    for key in (
        normalize_email(value),
        normalize_name(value),
        normalize_name(value, strip_legal_suffixes=True),
    ):
        assert key is None or isinstance(key, str)


@given(any_text, st.booleans())
def test_nfkc_forms_normalize_alike(value: str, strip: bool) -> None:
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        other = unicodedata.normalize(form, value)
        assert normalize_name(other, strip_legal_suffixes=strip) == normalize_name(
            value, strip_legal_suffixes=strip
        )
        assert normalize_email(other) == normalize_email(value)


@given(plain_letters, st.booleans())
def test_case_does_not_matter(value: str, strip: bool) -> None:
    for other in (value.upper(), value.lower(), value.swapcase(), value.title()):
        assert normalize_name(other, strip_legal_suffixes=strip) == normalize_name(
            value, strip_legal_suffixes=strip
        )
        assert normalize_email(other) == normalize_email(value)


@given(st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Z", "Cc"]), min_size=1), min_size=1,
                max_size=5), spaces, spaces, spaces)  # fmt: skip
def test_spacing_does_not_matter_in_names(words: list[str], before: str, between: str, after: str) -> None:
    assume(all(not any(c.isspace() for c in word) for word in words))
    single = " ".join(words)
    assert normalize_name(before + between.join(words) + after) == normalize_name(single)


@given(st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9.-]{1,20}", fullmatch=True), spaces, spaces)
def test_emails_ignore_surrounding_space_and_case(email: str, before: str, after: str) -> None:
    assert normalize_email(before + email.upper() + after) == email


@given(
    st.from_regex(r"[A-Za-z][A-Za-z0-9 &'-]{0,20}[A-Za-z0-9]", fullmatch=True),
    suffixes,
    st.sampled_from([" ", ", "]),
)
def test_a_name_with_a_legal_suffix_matches_the_bare_name(name: str, suffix: str, separator: str) -> None:
    bare = normalize_name(name, strip_legal_suffixes=True)
    assert normalize_name(f"{name}{separator}{suffix}", strip_legal_suffixes=True) == bare


def test_the_suffix_list_is_folded_and_dotless() -> None:
    assert all(word == word.casefold() and "." not in word for word in LEGAL_SUFFIXES)
