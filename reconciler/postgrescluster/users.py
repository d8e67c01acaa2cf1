"""User Secrets `<cluster>-pguser-<user>`: credentials and connection strings, PGO's keys."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from reconciler.postgres import password
from reconciler.postgrescluster import naming


def _decode(data: Mapping[str, str], key: str) -> str:
    value = data.get(key)
    return base64.b64decode(value).decode() if value else ""


def user_secret_data(
    *,
    cluster: str,
    namespace: str,
    user: str,
    databases: Sequence[str],
    port: int,
    password_type: password.PasswordType,
    existing: Mapping[str, str] | None,
) -> dict[str, str]:
    """The Secret's data (plain strings): keeps an existing password and verifier, else makes new.

    A user who replaces the password and clears the verifier gets a fresh verifier; one who
    deletes the password gets a new password (that is how passwords are rotated).
    """
    existing = existing or {}
    secret = _decode(existing, "password")
    verifier = _decode(existing, "verifier")
    if not secret:
        secret = password.generate(password_type)
        verifier = ""
    if not verifier:
        verifier = password.scram_verifier(secret)
    host = f"{naming.cluster_primary_service(cluster)}.{namespace}.svc"
    data = {
        "user": user,
        "password": secret,
        "verifier": verifier,
        "host": host,
        "port": str(port),
    }
    # Go's url.UserPassword leaves these sub-delimiters unescaped in the password.
    userinfo = f"{quote(user, safe='')}:{quote(secret, safe='$&+,;=')}"
    database = quote(databases[0], safe="") if databases else ""
    if databases:
        data["dbname"] = databases[0]
    query = urlencode(sorted({"password": secret, "user": user}.items()))
    data["uri"] = f"postgresql://{userinfo}@{host}:{port}" + (f"/{database}" if database else "")
    data["jdbc-uri"] = f"jdbc:postgresql://{host}:{port}/{database}?{query}"
    return data
