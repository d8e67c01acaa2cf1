"""TLS verify-full on every connection the pods make: no `sslmode` weaker than verify-full in
the configuration generated for the quick start with pgBouncer (the connections the operator
makes itself are verify-full by construction, `postgres.connection.client_tls`). The one
exception is the user's `customTLSSecret`, whose names need not cover the pods."""

from __future__ import annotations

import re
from typing import Any

import yaml

from reconciler.api.defaults import with_defaults
from reconciler.api.validation import parse_postgres_cluster
from reconciler.intent import Owner
from reconciler.pgbouncer import config as pgbouncer
from reconciler.postgrescluster.steps import cluster_config
from tests.api_examples import hippo

OWNER = Owner("hippo", "ns", "uid-1")
# pgBouncer's `client_tls_sslmode` is the TLS it asks of clients that connect to it, not a
# connection it makes.
SERVER_SIDE = ("client_tls_sslmode",)


def _spec(**extra: Any) -> dict[str, Any]:
    raw = hippo()
    raw["spec"]["proxy"] = {"pgBouncer": {}}
    raw["spec"].update(extra)
    return with_defaults(parse_postgres_cluster(raw)).spec.dump()


def _sslmodes(text: str) -> list[str]:
    """Every sslmode setting in a rendered file, as `key=value`."""
    found = re.findall(r"^\s*([\w.]*sslmode)\s*[:=]\s*(\S+)", text, re.MULTILINE)
    return [f"{key}={value}" for key, value in found if key not in SERVER_SIDE]


def _patroni(spec: dict[str, Any]) -> str:
    return str(cluster_config.config_map(OWNER, spec, bootstrapped=False)["data"]["patroni.yaml"])


def test_no_generated_connection_verifies_less_than_the_full_certificate() -> None:
    spec = _spec()
    modes = _sslmodes(_patroni(spec)) + _sslmodes(pgbouncer.ini("hippo", spec))
    assert modes == ["sslmode=verify-full"] * 2 + ["server_tls_sslmode=verify-full"]


def test_a_custom_server_certificate_is_verified_against_its_authority() -> None:
    spec = _spec(customTLSSecret={"name": "hippo.tls"})
    document = yaml.safe_load(_patroni(spec))
    authentication = document["postgresql"]["authentication"]
    assert {a["sslmode"] for a in authentication.values()} == {"verify-ca"}
