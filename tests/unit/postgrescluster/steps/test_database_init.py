"""When spec.databaseInitSQL runs."""

from __future__ import annotations

from reconciler.postgrescluster.steps.database_init import due

PROVISIONED = {"usersRevision": "abc"}


def test_init_sql_runs_once_after_the_users_on_a_ready_primary() -> None:
    assert due(PROVISIONED, {}, "init", primary_ready=True)
    assert not due(PROVISIONED, {}, "init", primary_ready=False)
    assert not due({}, {}, "init", primary_ready=True)  # users first (or never: custom TLS)
    assert not due({**PROVISIONED, "databaseInitSQL": "init"}, {}, "init", primary_ready=True)
    assert due({**PROVISIONED, "databaseInitSQL": "old"}, {}, "init", primary_ready=True)
    assert not due(PROVISIONED, {"shutdown": True}, "init", primary_ready=True)
