"""Objects the models reject become a field path, a message and a Ready=False condition."""

from __future__ import annotations

import pytest

from reconciler.api import InvalidSpec, invalid_spec_condition, parse_postgres_cluster
from tests.api_examples import hippo


def test_invalid_object_names_the_field() -> None:
    raw = hippo()
    raw["spec"]["instances"][0]["replicas"] = "three"
    with pytest.raises(InvalidSpec) as caught:
        parse_postgres_cluster(raw)
    assert caught.value.field == "spec.instances[0].replicas"
    assert "integer" in caught.value.message


def test_missing_required_field() -> None:
    raw = hippo()
    del raw["spec"]["postgresVersion"]
    with pytest.raises(InvalidSpec) as caught:
        parse_postgres_cluster(raw)
    assert caught.value.field == "spec.postgresVersion"
    assert caught.value.message == "Field required"


def test_several_problems_are_counted() -> None:
    raw = hippo()
    raw["spec"]["postgresVersion"] = 99
    raw["spec"]["port"] = 80
    with pytest.raises(InvalidSpec) as caught:
        parse_postgres_cluster(raw)
    assert "(and 1 more problems)" in caught.value.message


def test_invalid_spec_condition() -> None:
    error = InvalidSpec("spec.port", "Input should be greater than or equal to 1024")
    assert invalid_spec_condition(error, 7) == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.port: Input should be greater than or equal to 1024",
        "observedGeneration": 7,
    }


def test_int_or_string_error_names_the_field_once() -> None:
    raw = hippo()
    raw["spec"]["config"] = {"parameters": {"work_mem": [4]}}
    with pytest.raises(InvalidSpec) as caught:
        parse_postgres_cluster(raw)
    assert caught.value.field == "spec.config.parameters.work_mem"
    assert caught.value.message == "Input should be an integer or a string"
