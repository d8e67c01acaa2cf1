"""pg_hba rules in PGO's order."""

from __future__ import annotations

from typing import Any

from reconciler.postgres import hba


def test_pg_hba_has_mandatory_rules_first_then_the_spec_then_patroni() -> None:
    """The replication user is certificate-only; user rules follow in their order."""
    rules: list[dict[str, Any]] = [
        {
            "connection": "hostssl",
            "databases": ["app"],
            "users": ["app"],
            "method": "scram-sha-256",
        },
        {"hba": "host all all 10.0.0.0/8 reject"},
        {"connection": "local", "method": "peer", "options": {"map": "m"}},
    ]
    lines = hba.pg_hba(rules, {"postgresql": {"pg_hba": ["local all all trust"]}})
    assert lines[:6] == hba.mandatory_hba()
    # The operator reaches "postgres" with its certificate only, never with a password.
    assert lines[4:6] == ['hostssl all "postgres" all "cert"', 'host all "postgres" all "reject"']
    assert lines[6:] == [
        'hostssl "app" "app" all "scram-sha-256"',
        "host all all 10.0.0.0/8 reject",
        'local all all "peer" map="m"',
        "local all all trust",
    ]


def test_without_rules_everyone_needs_tls_and_scram() -> None:
    assert hba.pg_hba([], {})[-1] == 'hostssl all all all "scram-sha-256"'


def test_contributed_lines_come_after_the_mandatory_ones() -> None:
    """Subsystems' lines (pgBouncer's) sit between the operator's rules and the user's."""
    contributed = ['hostssl all "_crunchypgbouncer" all "scram-sha-256"']
    lines = hba.pg_hba([{"hba": "host all all 0.0.0.0/0 reject"}], {}, contributed)
    assert lines[6:] == [*contributed, "host all all 0.0.0.0/0 reject"]
