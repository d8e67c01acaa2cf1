"""pgBouncer's configuration files and the projections that put them in place."""

from __future__ import annotations

from typing import Any

from reconciler.pgbouncer import config


def _spec(**bouncer: Any) -> dict[str, Any]:
    return {"port": 5432, "proxy": {"pgBouncer": {"port": 5432, "replicas": 1, **bouncer}}}


def _sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """The ini's sections in order, with their `key = value` lines."""
    sections: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        elif " =" in line:
            key, _, value = line.partition(" =")
            sections[-1][1][key] = value.strip()
    return sections


def test_ini_has_tls_both_ways_auth_query_and_a_pool_per_database() -> None:
    text = config.ini("hippo", _spec())
    assert text.startswith(config.HEADER)
    # The user's file is included first, so that ours overrides it.
    assert "[pgbouncer]\n%include /etc/pgbouncer/pgbouncer.ini\n" in text
    (_, _), (_, main), (name, databases) = _sections(text)
    assert name == "databases"
    assert databases == {"*": "host=hippo-primary port=5432"}
    assert main["auth_user"] == "_crunchypgbouncer"
    assert main["auth_query"] == "SELECT username, password from pgbouncer.get_auth($1)"
    assert main["auth_file"] == "/etc/pgbouncer/~postgres-operator/users.txt"
    assert main["client_tls_sslmode"] == "require"
    assert main["client_tls_cert_file"] == "/etc/pgbouncer/~postgres-operator/frontend-tls.crt"
    assert main["server_tls_sslmode"] == "verify-full"
    assert main["server_tls_ca_file"] == "/etc/pgbouncer/~postgres-operator/backend-ca.crt"
    assert main["unix_socket_dir"] == ""
    assert main["conffile"] == "/etc/pgbouncer/~postgres-operator.ini"
    assert main["admin_users"] == "_crunchypgbouncer"
    assert list(main) == sorted(main)


def test_ini_takes_the_users_settings_but_keeps_its_own_file() -> None:
    bouncer = {
        "port": 6432,
        "config": {
            "global": {"pool_mode": "transaction", "conffile": "/elsewhere.ini"},
            "databases": {"zoo": "host=hippo-replicas dbname=zoo"},
            "users": {"app": "pool_mode=session"},
        },
    }
    sections = dict(_sections(config.ini("hippo", _spec(**bouncer))))
    main = _sections(config.ini("hippo", _spec(**bouncer)))[1][1]
    assert main["pool_mode"] == "transaction"
    assert main["listen_port"] == "6432"
    assert main["conffile"] == "/etc/pgbouncer/~postgres-operator.ini"
    assert sections["databases"] == {"zoo": "host=hippo-replicas dbname=zoo"}
    assert sections["users"] == {"app": "pool_mode=session"}


def test_auth_file_quotes_as_pgbouncer_reads_it() -> None:
    assert config.auth_file('pa"ss') == '"_crunchypgbouncer" "pa""ss"\n'


def test_sources_put_user_files_between_the_empty_file_and_ours() -> None:
    user_file = {"secret": {"name": "mine", "items": [{"key": "k", "path": "pgbouncer.ini"}]}}
    sources = config.config_sources("hippo", _spec(config={"files": [user_file]}))
    assert sources[0]["configMap"]["items"] == [{"key": "pgbouncer-empty", "path": "pgbouncer.ini"}]
    assert sources[1] == user_file
    assert sources[2]["configMap"]["items"] == [
        {"key": "pgbouncer.ini", "path": "~postgres-operator.ini"}
    ]
    assert sources[3]["secret"]["items"] == [
        {"key": "pgbouncer-users.txt", "path": "~postgres-operator/users.txt"}
    ]
    frontend, backend = sources[4]["secret"], sources[5]["secret"]
    assert frontend["name"] == "hippo-pgbouncer"
    assert {item["key"] for item in frontend["items"]} == {
        "pgbouncer-frontend.ca-roots",
        "pgbouncer-frontend.crt",
        "pgbouncer-frontend.key",
    }
    assert backend == {
        "name": "hippo-cluster-cert",
        "items": [{"key": "ca.crt", "path": "~postgres-operator/backend-ca.crt"}],
    }


def test_custom_certificates_are_projected_by_their_paths() -> None:
    """A custom projection names its items by the usual paths; they move to ours. Without
    items, the usual keys are used."""
    custom = {
        "name": "bouncer-tls",
        "items": [
            {"key": "cert", "path": "tls.crt"},
            {"key": "key", "path": "tls.key"},
            {"key": "authority", "path": "ca.crt"},
            {"key": "unused", "path": "other"},
        ],
    }
    frontend = config.frontend_certificate("hippo", custom)["secret"]
    assert frontend["name"] == "bouncer-tls"
    assert frontend["items"] == [
        {"key": "cert", "path": "~postgres-operator/frontend-tls.crt"},
        {"key": "key", "path": "~postgres-operator/frontend-tls.key"},
        {"key": "authority", "path": "~postgres-operator/frontend-ca.crt"},
    ]
    bare = config.frontend_certificate("hippo", {"name": "bouncer-tls"})["secret"]
    assert {item["key"] for item in bare["items"]} == {"ca.crt", "tls.crt", "tls.key"}
    backend = config.backend_authority("hippo", {"name": "server-tls"})["secret"]
    assert backend == {
        "name": "server-tls",
        "items": [{"key": "ca.crt", "path": "~postgres-operator/backend-ca.crt"}],
    }


def test_reloader_signals_pgbouncer_when_the_directory_changes() -> None:
    command = config.reload_command()
    assert command[:3] == ["bash", "-ceu", "--"]
    assert command[4:] == ["pgbouncer-config", "/etc/pgbouncer"]
    assert "pkill -HUP --exact pgbouncer" in command[3]


def test_pausing_is_for_transaction_and_statement_pooling() -> None:
    """PAUSE with session pooling waits for every client to leave: not worth a switchover's
    delay."""
    assert not config.pauses_cleanly(_spec())
    assert not config.pauses_cleanly(_spec(config={"global": {"pool_mode": "session"}}))
    assert config.pauses_cleanly(_spec(config={"global": {"pool_mode": "transaction"}}))
    assert config.pauses_cleanly(_spec(config={"global": {"pool_mode": "statement"}}))
