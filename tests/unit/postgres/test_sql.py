"""The SQL provisioning spec.users: quoting, statements, the revision that gates re-runs."""

from __future__ import annotations

from reconciler.postgres import sql


def test_identifiers_and_literals_are_quoted() -> None:
    assert sql.identifier('we"ird Name') == '"we""ird Name"'
    assert sql.literal("it's") == "'it''s'"


def test_role_is_created_once_then_altered_with_options_and_verifier() -> None:
    create, alter = sql.role_statements('Ro"le', "CREATEDB CONNECTION LIMIT 2", "SCRAM-SHA-256$x")
    assert "WHERE rolname = 'Ro\"le'" in create
    assert 'CREATE ROLE "Ro""le" LOGIN' in create
    assert (
        alter == 'ALTER ROLE "Ro""le" WITH CREATEDB CONNECTION LIMIT 2 PASSWORD \'SCRAM-SHA-256$x\''
    )
    assert sql.role_statements("a", " ", "v")[1] == "ALTER ROLE \"a\" PASSWORD 'v'"


def test_databases_are_created_once_and_granted_to_each_user() -> None:
    users = [{"name": "a", "databases": ["zoo", "Farm"]}, {"name": "b", "databases": ["zoo"]}]
    assert sql.databases_of(users) == ["zoo", "Farm"]
    assert (
        sql.database_exists("z'oo")
        == "SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'z''oo'"
    )
    assert sql.create_database("Farm") == 'CREATE DATABASE "Farm"'
    assert sql.grant_database("zoo", "b") == 'GRANT ALL PRIVILEGES ON DATABASE "zoo" TO "b"'
    assert sql.schema_statement("b") == 'CREATE SCHEMA IF NOT EXISTS "b" AUTHORIZATION "b"'


def test_revision_changes_with_users_verifiers_and_schemas_only() -> None:
    users = [{"name": "a", "databases": ["zoo"]}]
    base = sql.users_revision(users, {"a": "v1"}, schemas=True)
    assert base == sql.users_revision(
        [{"databases": ["zoo"], "name": "a"}], {"a": "v1"}, schemas=True
    )
    assert base != sql.users_revision(users, {"a": "v2"}, schemas=True)
    assert base != sql.users_revision(users, {"a": "v1"}, schemas=False)
    assert base != sql.users_revision(
        [{"name": "a", "databases": ["zoo"], "options": "CREATEDB"}], {"a": "v1"}, schemas=True
    )
