"""Generated passwords and SCRAM-SHA-256 verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from reconciler.postgres import password


def test_generated_passwords_use_the_alphabet_and_length() -> None:
    """ASCII passwords are 24 characters of PGO's alphabet; AlphaNumeric only letters, digits."""
    ascii_password = password.generate("ASCII")
    assert len(ascii_password) == 24
    assert set(ascii_password) <= set("()*+,-./:;<=>?@[]^_{|}") | set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    )
    assert password.generate("AlphaNumeric", 64).isalnum()
    assert password.generate() != password.generate()


def test_verifier_follows_rfc_5802() -> None:
    """The verifier carries the iteration count, the salt, StoredKey and ServerKey."""
    salt = bytes(range(16))
    verifier = password.scram_verifier("pencil", salt=salt)
    method, parameters, keys = verifier.split("$")
    assert method == "SCRAM-SHA-256"
    assert parameters == f"4096:{base64.b64encode(salt).decode()}"
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    stored = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server = hmac.digest(salted, b"Server Key", "sha256")
    assert keys == f"{base64.b64encode(stored).decode()}:{base64.b64encode(server).decode()}"


@given(st.text(min_size=1, max_size=20))
def test_verifier_matches_its_password_only(secret: str) -> None:
    """A verifier matches the password it was made from, and not another one."""
    verifier = password.scram_verifier(secret, iterations=16)
    assert password.verifier_matches(secret, verifier)
    assert not password.verifier_matches(secret + "x", verifier)


def test_saslprep_maps_spaces_and_drops_soft_hyphens() -> None:
    """Non-ASCII spaces become spaces and 'mapped to nothing' characters vanish (RFC 4013)."""
    assert password.saslprep("a\u00a0b\u00adc") == "a bc"
    # A prohibited character (a control character) leaves the password as it is.
    assert password.saslprep("a\u0007b") == "a\u0007b"
