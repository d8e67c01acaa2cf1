"""Passwords and their SCRAM-SHA-256 verifiers, as PostgreSQL stores them.

The operator gives PostgreSQL only the verifier (`ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'`),
so the clear password never travels to the server nor appears in its logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from typing import Literal

PasswordType = Literal["ASCII", "AlphaNumeric"]

GENERATED_LENGTH = 24
SCRAM_ITERATIONS = 4096
SALT_LENGTH = 16

_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Printable ASCII without space, quotes, backslash, backtick, '#', '$', '%', '&', '!', '~':
# characters that need escaping in shells, URIs or connection strings are left out.
_ASCII = "()*+,-./:;<=>?@[]^_{|}" + _ALPHANUMERIC


def generate(kind: PasswordType = "ASCII", length: int = GENERATED_LENGTH) -> str:
    """A random password, each character drawn uniformly from the alphabet of `kind`."""
    alphabet = _ASCII if kind == "ASCII" else _ALPHANUMERIC
    return "".join(secrets.choice(alphabet) for _ in range(length))


def saslprep(password: str) -> str:
    """Normalise a password as PostgreSQL does before hashing it (RFC 4013).

    Like PostgreSQL, a password that SASLprep rejects is used as it is.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)
    )
    normalised = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(test(c) for c in normalised for test in prohibited):
        return password
    bidi = [stringprep.in_table_d1(c) for c in normalised]
    if any(bidi) and (
        not (bidi[0] and bidi[-1]) or any(stringprep.in_table_d2(c) for c in normalised)
    ):
        return password
    return normalised


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The SCRAM-SHA-256 verifier of `password`: `SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>`."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_LENGTH)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(password: str, verifier: str) -> bool:
    """Whether `verifier` was made from `password` (its salt and iteration count are reused)."""
    try:
        method, rest = verifier.split("$", 1)
        parameters, _ = rest.split("$", 1)
        iterations, salt = parameters.split(":", 1)
        expected = scram_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations))
    except ValueError:
        return False
    return method == "SCRAM-SHA-256" and hmac.compare_digest(expected, verifier)
