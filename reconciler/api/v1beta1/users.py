"""`spec.users`: the PostgreSQL roles the operator manages, and their Secrets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reconciler.api.base import LIST_SET, ApiModel, Rule, crd_default, validations

USER_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

RoleOptions = Annotated[
    str,
    Field(
        max_length=200,
        pattern="^[^;]*$",
        json_schema_extra=validations(
            Rule(
                rule='!self.matches("(?i:PASSWORD)")',
                message="cannot assign password",
            ),
            Rule(
                rule='!self.matches("(?:--|/[*]|[*]/)")',
                message="cannot contain comments",
            ),
        ),
    ),
]


class PostgresPasswordSpec(ApiModel):
    """How the operator generates the user's password."""

    type: Literal["ASCII", "AlphaNumeric"] = Field(json_schema_extra=crd_default("ASCII"))
    """The characters of the password: printable `ASCII`, or only letters and digits
    (`AlphaNumeric`)."""


class PostgresUserSpec(ApiModel):
    """A PostgreSQL role. Its credentials are in the Secret `<cluster>-pguser-<name>`."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=USER_NAME_PATTERN)]
    """The role name: lowercase letters, digits and hyphens."""
    databases: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(
        None, json_schema_extra=LIST_SET
    )
    """Databases the role may use; the operator creates them and grants all privileges on
    them. The first one is the database of the connection strings in the Secret."""
    options: RoleOptions | None = None
    """Role attributes of `ALTER ROLE`, e.g. `SUPERUSER` or `CONNECTION LIMIT 10`. A password
    cannot be set here; the operator manages it."""
    password: PostgresPasswordSpec | None = None
    """How the password is generated."""
