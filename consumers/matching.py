"""Match keys: how a record with no link finds its counterpart on first sync (email, name or domain).

Both sides reduce the rule's field to one normalized key, and equal keys match. Normalizing is Unicode
NFKC with case folding, so a fullwidth or differently-cased address or name still matches; a value that
normalizes to nothing gives no key (None), and the caller decides whether to create a record anyway
(`MatchRule.create_when_empty`). Names are unique on neither side, so a name key can pair two different
companies of the same name; stripping legal suffixes ("Acme, Inc." = "ACME") widens that on purpose.
A domain key is a website reduced to its host (HubSpot de-duplicates companies by ``domain``; Dataverse's
``websiteurl`` holds a whole URL): ``https://www.Example.com:443/about`` is ``example.com``. A domain rule
``with_name`` keys on both, so two companies sharing a host but not a name do not pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Literal

from consumers.config import MatchRule
from streams.codec import Scalar

__all__ = [
    "KEY_JOINER",
    "LEGAL_SUFFIXES",
    "match_key",
    "normalize_domain",
    "normalize_email",
    "normalize_name",
]

LEGAL_SUFFIXES = (
    "inc",
    "incorporated",
    "llc",
    "llp",
    "ltd",
    "limited",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "bv",
    "nv",
    "plc",
    "corp",
    "corporation",
    "co",
)
"""Trailing words stripped from names when a rule asks, compared case-folded with their dots removed
("S.A." is "sa", "Inc." is "inc")."""

_SUFFIX = re.compile(
    r"(?:\s*,\s*|\s+)(?P<suffix>"
    + "|".join(r"\.?".join(map(re.escape, word)) for word in LEGAL_SUFFIXES)
    + r")\.?$"
)
_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//")
KEY_JOINER = "\n"
"""Joins a domain and a name into one key (``with_name``); neither normalized part holds a newline."""
_FOLD_ROUNDS = 4  # NFKC and case folding undo each other's work for a few characters; settle, bounded


def normalize_email(value: Scalar) -> str | None:
    """Trimmed and case-folded; None unless it looks like one address (one "@", something either side)."""
    if not isinstance(value, str):
        return None
    email = _fold(value).strip()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in email):
        return None
    return email


def normalize_name(value: Scalar, *, strip_legal_suffixes: bool = False) -> str | None:
    """Case-folded, whitespace collapsed; optionally without trailing legal suffixes (never down to empty)."""
    if not isinstance(value, str):
        return None
    name = " ".join(_fold(value).split())
    while strip_legal_suffixes and (shorter := _without_suffix(name)) is not None:
        name = shorter
    return name or None


def normalize_domain(value: Scalar) -> str | None:
    """The host of a website or domain: case-folded, without scheme, user, port, path, query, fragment, a
    trailing dot or a leading ``www.``; None when nothing host-like is left (empty, or holding spaces)."""
    if not isinstance(value, str):
        return None
    host = _SCHEME.sub("", _fold(value).strip())
    for stop in "/?#":
        host = host.partition(stop)[0]
    host = host.rpartition("@")[2].partition(":")[0]
    while host.startswith("www."):
        host = host.removeprefix("www.")
    host = host.rstrip(".")
    if not host or any(c.isspace() for c in host):
        return None
    return host


def match_key(
    rule: MatchRule, values: Mapping[str, Scalar], *, side: Literal["source", "target"]
) -> str | None:
    """The key a record matches by, read from the rule's source or target field; None when it has none."""
    value = values.get(rule.source if side == "source" else rule.target)
    if rule.kind == "email":
        return normalize_email(value)
    if rule.kind == "name":
        return normalize_name(value, strip_legal_suffixes=rule.strip_legal_suffixes)
    domain = normalize_domain(value)
    if rule.with_name is None or domain is None:
        return domain
    name_value = values.get(rule.with_name.source if side == "source" else rule.with_name.target)
    name = normalize_name(name_value, strip_legal_suffixes=rule.strip_legal_suffixes)
    return None if name is None else domain + KEY_JOINER + name


def _fold(text: str) -> str:
    for _ in range(_FOLD_ROUNDS):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return text


def _without_suffix(name: str) -> str | None:
    found = _SUFFIX.search(name)
    if found is None:
        return None
    shorter = name[: found.start()].rstrip(" ,")
    return shorter or None
