"""`spec.authentication`: client authentication rules (`pg_hba.conf`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from reconciler.api.base import ATOMIC, ApiModel, Rule, validations
from reconciler.api.kubernetes import IntOrString

_LDAP_SIMPLE_BIND = ("ldapprefix", "ldapsuffix")
_LDAP_SEARCH_BIND = (
    "ldapbasedn",
    "ldapbinddn",
    "ldapbindpasswd",
    "ldapsearchattribute",
    "ldapsearchfilter",
)


def _any_option(names: tuple[str, ...]) -> str:
    return " || ".join(f"'{name}' in self.options" for name in names)


Name = Annotated[str, Field(min_length=1, max_length=63)]
Word = Annotated[str, Field(min_length=1, max_length=20, pattern="^[-a-z0-9]+$")]


class HBARule(ApiModel):
    """One client authentication rule: either a whole `pg_hba.conf` line in `hba`, or the parts
    of one in `connection`, `databases`, `users`, `method` and `options`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-map-type": "atomic",
            **validations(
                Rule(
                    rule="[has(self.hba), has(self.connection) || has(self.databases)"
                    " || has(self.method) || has(self.options) || has(self.users)]"
                    ".exists_one(b, b)",
                    message="a rule is either `hba` alone, or `connection` and `method`"
                    " (with optional `databases`, `users` and `options`)",
                ),
                Rule(
                    rule="has(self.hba) || (has(self.connection) && has(self.method))",
                    message="a rule without `hba` needs `connection` and `method`",
                ),
                Rule(
                    rule="has(self.hba) || self.method != 'ldap' || (has(self.options)"
                    f" && ({_any_option(('ldapbasedn', *_LDAP_SIMPLE_BIND))}))",
                    message="the ldap method needs an ldapbasedn, ldapprefix or ldapsuffix option",
                    fieldPath=".options",
                ),
                Rule(
                    rule="has(self.hba) || self.method != 'ldap' || !has(self.options)"
                    f" || !(({_any_option(_LDAP_SIMPLE_BIND)})"
                    f" && ({_any_option(_LDAP_SEARCH_BIND)}))",
                    message="ldap options cannot mix simple bind (ldapprefix, ldapsuffix) with"
                    " search+bind (ldapbasedn, ldapbinddn, ldapbindpasswd,"
                    " ldapsearchattribute, ldapsearchfilter)",
                    fieldPath=".options",
                ),
                Rule(
                    rule="has(self.hba) || self.method != 'radius' || has(self.options)"
                    " && 'radiusservers' in self.options && 'radiussecrets' in self.options",
                    message="the radius method needs the radiusservers and radiussecrets options",
                    fieldPath=".options",
                ),
            ),
        }
    )

    hba: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=100,
                pattern="^[[:print:]]+$",
                json_schema_extra=validations(
                    Rule(
                        rule='!self.trim().startsWith("include")',
                        message="include directives are not allowed in hba",
                    )
                ),
            ),
        ]
        | None
    ) = None
    """A complete `pg_hba.conf` line (printable characters, at most 100), e.g. `hostssl all
    all all scram-sha-256`."""
    connection: Word | None = None
    """The connection type: `host`, `hostssl`, `hostnossl`, `local`, ..."""
    databases: list[Name] | None = Field(None, max_length=20, json_schema_extra=ATOMIC)
    """The databases the rule matches; all when unset."""
    users: list[Name] | None = Field(None, max_length=20, json_schema_extra=ATOMIC)
    """The users (or `+group` roles) the rule matches; all when unset."""
    method: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=20,
                pattern="^[-a-z0-9]+$",
                json_schema_extra=validations(
                    Rule(
                        rule='self != "trust"',
                        message="the trust method is not allowed; every client must authenticate",
                    )
                ),
            ),
        ]
        | None
    ) = None
    """The authentication method, e.g. `scram-sha-256`, `cert`, `ldap`; never `trust`."""
    options: dict[str, IntOrString] | None = Field(
        None, json_schema_extra={"maxProperties": 20, "x-kubernetes-map-type": "atomic"}
    )
    """Options of the method, e.g. `ldapserver`."""


class Authentication(ApiModel):
    """Client authentication of PostgreSQL."""

    rules: list[HBARule] | None = Field(None, max_length=10, json_schema_extra=ATOMIC)
    """Rules checked before the operator's own, first match wins."""
