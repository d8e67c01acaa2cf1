"""User Secrets `<cluster>-pguser-<user>`: credentials and connection strings, PGO's keys."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.postgres import password
from reconciler.runtime.client import JSON


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
    pgbouncer_port: int | None = None,
) -> dict[str, str]:
    """The Secret's data (plain strings): keeps an existing password and verifier, else makes new.
    With `pgbouncer_port` (pooling on), the `pgbouncer-*` keys too.

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
    host = naming.service_dns(naming.cluster_primary_service(cluster), namespace)
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
    credentials = {"password": secret, "user": user}
    query = urlencode(sorted(credentials.items()))
    data["uri"] = f"postgresql://{userinfo}@{host}:{port}" + (f"/{database}" if database else "")
    data["jdbc-uri"] = f"jdbc:postgresql://{host}:{port}/{database}?{query}"
    if pgbouncer_port is not None:
        bouncer = naming.service_dns(naming.pgbouncer(cluster), namespace)
        data["pgbouncer-host"] = bouncer
        data["pgbouncer-port"] = str(pgbouncer_port)
        if database:
            # Prepared statements do not survive transaction pooling: JDBC must not make them.
            query = urlencode(sorted({**credentials, "prepareThreshold": "0"}.items()))
            address = f"{bouncer}:{pgbouncer_port}/{database}"
            data["pgbouncer-uri"] = f"postgresql://{userinfo}@{address}"
            data["pgbouncer-jdbc-uri"] = f"jdbc:postgresql://{address}?{query}"
    return data


def effective_users(cluster: str, users: Sequence[Mapping[str, Any]] | None) -> list[JSON]:
    """The users to provision: the spec's, or, when `users` is omitted, one named after the
    cluster with a database of the same name (an empty list means none)."""
    if users is None:
        return [{"name": cluster, "databases": [cluster], "password": {"type": "ASCII"}}]
    return [dict(user) for user in users]


def user_secret(
    owner: Owner,
    user: Mapping[str, Any],
    *,
    port: int,
    existing: Mapping[str, str] | None,
    pgbouncer_port: int | None = None,
) -> JSON:
    """`<c>-pguser-<user>`, labelled so that the operator finds the Secrets of removed users."""
    name = str(user["name"])
    data = user_secret_data(
        cluster=owner.name,
        namespace=owner.namespace,
        user=name,
        databases=list(user.get("databases") or []),
        port=port,
        password_type=(user.get("password") or {}).get("type", "ASCII"),
        existing=existing,
        pgbouncer_port=pgbouncer_port,
    )
    labels = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_ROLE: naming.ROLE_POSTGRES_USER,
        naming.LABEL_POSTGRES_USER: name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(owner, naming.postgres_user_secret(owner.name, name), labels),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }
