"""When user schemas are created."""

from __future__ import annotations

from reconciler.postgrescluster.steps.postgres_users import wants_schemas

ANNOTATION = "postgres-operator.crunchydata.com/autoCreateUserSchema"


def test_user_schemas_need_the_gate_and_the_annotation() -> None:
    assert wants_schemas({ANNOTATION: "true"}, gate=True)
    assert not wants_schemas({ANNOTATION: "true"}, gate=False)
    assert not wants_schemas({ANNOTATION: "yes"}, gate=True)
    assert not wants_schemas({}, gate=True)
