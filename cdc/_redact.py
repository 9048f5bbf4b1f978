"""What looks like a credential, for the messages that quote what a user typed (settings errors).

Better a name or a URL hidden by mistake than a token shown: a hidden value costs the reader a look at
their own file; a shown one ends up in a CI log or a support ticket.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

__all__ = ["HIDDEN", "looks_secret", "scrub", "secret_name"]

HIDDEN: Final = "<hidden>"

# Key names that say their value is a credential, wherever they sit.
_SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|credential|api_?key|private_?key", re.IGNORECASE)
# Token shapes: HubSpot private-app tokens and personal access keys (pat-na1-..., pak-...), a JWT (the
# base64 of '{"' is eyJ), an Authorization value, a URL with a password in it, a UUID (client and tenant
# ids, app secrets).
_TOKEN_SHAPE = re.compile(
    r"\bpa[tk]-[a-z]{2,4}\d*-|eyJ[\w-]{4,}\.[\w-]{4,}|\b(bearer|basic)\s+\S{8,}|://[^/\s@]*:[^/\s@]*@"
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(r"\b(bearer|basic)\s+\S+", re.IGNORECASE)
# A long run without the separators people put in names (- . / :) is a key, not a name, when it mixes
# letters and digits and is not repetitive: hex and base64 secrets, Azure client secrets.
_DENSE_RUN = re.compile(r"[A-Za-z0-9+_=~]{16,}")
_LONG_WORD = re.compile(r"\S{40,}")
_MIN_ENTROPY_BITS = 3.0


def _entropy(text: str) -> float:
    counts = Counter(text).values()
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts)


def _dense(run: str) -> bool:
    return (
        any(c.isdigit() for c in run) and any(c.isalpha() for c in run) and _entropy(run) >= _MIN_ENTROPY_BITS
    )


def secret_name(name: str) -> bool:
    """Whether a key's name says it holds a credential (``password``, ``client_secret``, ``token``...)."""
    return _SECRET_NAME.search(name) is not None


def looks_secret(text: str) -> bool:
    """Whether ``text`` holds something shaped like a token, key or password."""
    return (
        _TOKEN_SHAPE.search(text) is not None
        or _LONG_WORD.search(text) is not None
        or any(_dense(run) for run in _DENSE_RUN.findall(text))
    )


def scrub(text: str) -> str:
    """``text`` with each word that looks like a secret (and any ``Bearer ...``) replaced by ``<hidden>``."""
    text = _AUTHORIZATION.sub(HIDDEN, text)
    return re.sub(r"\S+", lambda word: HIDDEN if looks_secret(word.group()) else word.group(), text)
