"""What a Warning quotes of psql's output."""

from __future__ import annotations

from reconciler.postgres.psql import Outcome


def test_errors_quote_error_lines_only() -> None:
    """Context lines may echo the script (a password in CREATE ROLE): never quoted."""
    output = (
        "CREATE TABLE\n"
        'psql:<stdin>:3: ERROR:  syntax error at or near "PASSWORD"\n'
        "LINE 1: create role x PASSWORD 's3cret' nologin bogus;\n"
        "DETAIL:  Key (n)=(1) already exists.\n"
    )
    errors = Outcome(3, output).errors()
    assert errors == 'psql:<stdin>:3: ERROR:  syntax error at or near "PASSWORD"'
    assert "s3cret" not in errors


def test_errors_of_a_connection_failure_and_of_silence() -> None:
    failed = Outcome(2, 'psql: error: connection to server at "h" failed: timeout\n')
    assert failed.errors().startswith("psql: error: connection to server")
    assert Outcome(1, "").errors() == "psql exited with code 1"
    many = "".join(f"psql:<stdin>:{n}: ERROR:  e{n}\n" for n in range(5))
    assert Outcome(3, many).errors().count("ERROR:") == 3
