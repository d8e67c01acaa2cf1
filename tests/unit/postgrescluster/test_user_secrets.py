"""The data of user Secrets `<cluster>-pguser-<user>`."""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit

from reconciler.intent import Owner
from reconciler.postgres.password import verifier_matches
from reconciler.postgrescluster.user_secrets import effective_users, user_secret, user_secret_data


def _encoded(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def test_new_user_gets_password_verifier_and_connection_strings() -> None:
    """PGO's keys, with a host of the primary Service and the first database."""
    data = user_secret_data(
        cluster="hippo",
        namespace="ns",
        user="hippo",
        databases=["zoo", "other"],
        port=5432,
        password_type="ASCII",
        existing=None,
    )
    assert data["host"] == "hippo-primary.ns.svc"
    assert data["port"] == "5432"
    assert data["dbname"] == "zoo"
    assert verifier_matches(data["password"], data["verifier"])
    uri = urlsplit(data["uri"])
    assert (uri.scheme, uri.hostname, uri.port, uri.path) == (
        "postgresql",
        "hippo-primary.ns.svc",
        5432,
        "/zoo",
    )
    assert unquote(uri.password or "") == data["password"]
    assert data["jdbc-uri"].startswith("jdbc:postgresql://hippo-primary.ns.svc:5432/zoo?password=")
    assert data["jdbc-uri"].endswith("&user=hippo")


def test_existing_password_is_kept_and_a_cleared_one_is_rotated() -> None:
    """The password survives reconciles; deleting it from the Secret makes a new one."""
    first = user_secret_data(
        cluster="c",
        namespace="n",
        user="u",
        databases=[],
        port=5432,
        password_type="ASCII",
        existing=None,
    )
    again = user_secret_data(
        cluster="c",
        namespace="n",
        user="u",
        databases=[],
        port=5432,
        password_type="ASCII",
        existing=_encoded(first),
    )
    assert (again["password"], again["verifier"]) == (first["password"], first["verifier"])
    assert "dbname" not in again
    cleared = _encoded({k: v for k, v in first.items() if k != "password"})
    rotated = user_secret_data(
        cluster="c",
        namespace="n",
        user="u",
        databases=[],
        port=5432,
        password_type="ASCII",
        existing=cleared,
    )
    assert rotated["password"] != first["password"]
    assert verifier_matches(rotated["password"], rotated["verifier"])


def test_changed_password_without_verifier_gets_a_new_verifier() -> None:
    """A user who sets a password and clears the verifier gets a matching verifier."""
    data = user_secret_data(
        cluster="c",
        namespace="n",
        user="u",
        databases=["db"],
        port=5432,
        password_type="AlphaNumeric",
        existing=_encoded({"password": "chosen-by-user"}),
    )
    assert data["password"] == "chosen-by-user"
    assert verifier_matches("chosen-by-user", data["verifier"])


def test_omitted_users_mean_one_user_named_after_the_cluster() -> None:
    """No `users`: user and database `hippo`; an empty list: nobody."""
    assert effective_users("hippo", None) == [
        {"name": "hippo", "databases": ["hippo"], "password": {"type": "ASCII"}}
    ]
    assert effective_users("hippo", []) == []


def test_user_secret_is_labelled_for_its_user() -> None:
    """`hippo-pguser-rhino` with role=pguser and pguser=rhino, data base64-encoded."""
    owner = Owner("hippo", "ns", "uid")
    secret = user_secret(owner, {"name": "rhino", "databases": ["zoo"]}, port=5432, existing=None)
    assert secret["metadata"]["name"] == "hippo-pguser-rhino"
    labels = secret["metadata"]["labels"]
    assert labels["postgres-operator.crunchydata.com/role"] == "pguser"
    assert labels["postgres-operator.crunchydata.com/pguser"] == "rhino"
    assert base64.b64decode(secret["data"]["dbname"]) == b"zoo"


def _hippo_data(databases: list[str], pgbouncer_port: int | None) -> dict[str, str]:
    return user_secret_data(
        cluster="hippo",
        namespace="ns",
        user="hippo",
        databases=databases,
        port=5432,
        password_type="ASCII",
        existing=None,
        pgbouncer_port=pgbouncer_port,
    )


def test_pooling_adds_the_pgbouncer_keys() -> None:
    """PGO's `pgbouncer-*` keys: the pgBouncer Service, its port, and URIs with the first
    database (JDBC without prepared statements); none while pooling is off."""
    data = _hippo_data(["zoo"], 6432)
    assert data["pgbouncer-host"] == "hippo-pgbouncer.ns.svc"
    assert data["pgbouncer-port"] == "6432"
    uri = urlsplit(data["pgbouncer-uri"])
    assert (uri.hostname, uri.port, uri.path, uri.username) == (
        "hippo-pgbouncer.ns.svc",
        6432,
        "/zoo",
        "hippo",
    )
    assert unquote(uri.password or "") == data["password"]
    jdbc = data["pgbouncer-jdbc-uri"]
    assert jdbc.startswith("jdbc:postgresql://hippo-pgbouncer.ns.svc:6432/zoo?password=")
    assert jdbc.endswith("&prepareThreshold=0&user=hippo")
    without_database = _hippo_data([], 5432)
    assert "pgbouncer-host" in without_database
    assert "pgbouncer-uri" not in without_database
    assert not [key for key in _hippo_data(["zoo"], None) if key.startswith("pgbouncer")]
