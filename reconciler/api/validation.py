"""Parse raw PostgresCluster objects, and describe the ones our models reject.

The apiserver validates against our CRD, so a rejected object is one admitted under another
(older) CRD. The controller must not crash on it: it sets the condition from
`invalid_spec_condition`, emits a Warning Event with reason `naming.REASON_INVALID_SPEC`, and
moves on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from reconciler.api.v1beta1 import PostgresCluster
from reconciler.naming import CONDITION_READY, REASON_INVALID_SPEC


class InvalidSpec(ValueError):
    """An object the models reject: the path of the first bad field, and what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def field_path(location: Sequence[int | str]) -> str:
    """A pydantic error location as a Kubernetes field path, e.g. `spec.instances[0].name`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def parse_postgres_cluster(raw: Mapping[str, Any]) -> PostgresCluster:
    """The model of a raw PostgresCluster object; raises `InvalidSpec` when it does not fit."""
    try:
        return PostgresCluster.model_validate(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False)
        first = problems[0]
        message = first["msg"]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problems)"
        raise InvalidSpec(field_path(first["loc"]), message) from error


def invalid_spec_condition(error: InvalidSpec, observed_generation: int) -> dict[str, Any]:
    """The `Ready` condition of an object whose spec the operator cannot use."""
    return {
        "type": CONDITION_READY,
        "status": "False",
        "reason": REASON_INVALID_SPEC,
        "message": f"{error.field}: {error.message}",
        "observedGeneration": observed_generation,
    }
