"""Password hashes for `admin.users`: scrypt from the standard library, with its cost in the hash.

Format: ``scrypt$N$r$p$salt$hash`` (salt and hash base64). The cost is N=2^15, r=8, p=1: 32 MiB and
0.4 s per check measured on the shared 2-core machine under load. OWASP's password storage cheat sheet
recommends N=2^17 with r=8, p=1, four times the memory and time: too slow a login on such a machine, so
less here, with the failed-login limit per address to slow guessing as well. A hash made with another
cost still verifies: the cost travels with it. A malformed hash never matches and never raises.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_nobody", "verify_password"]

N, R, P = 2**15, 8, 1
KEY_BYTES = 32
MAX_MEM = 64 * 1024 * 1024
PARTS = 6
_MAX_N = 2**20


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEM, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    key = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time."""
    parts = stored.split("$")
    if len(parts) != PARTS or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    if not (1 < n <= _MAX_N and 0 < r <= 16 and 0 < p <= 4) or len(key) != KEY_BYTES:  # noqa: PLR2004
        return False  # a cost beyond these would let a settings file make every login a denial of service
    try:
        return hmac.compare_digest(_derive(password, salt, n, r, p), key)
    except ValueError:  # scrypt refuses the parameters (N not a power of two, memory)
        return False


@functools.cache
def _nobody() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_nobody(password: str) -> bool:
    """The work of one check for a user who does not exist, so the answer's timing does not tell."""
    verify_password(password, _nobody())
    return False
