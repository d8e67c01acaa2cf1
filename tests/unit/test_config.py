"""Configuration from the environment: PGO's variables, defaults, and fail-fast errors."""

from __future__ import annotations

import pytest

from reconciler import features
from reconciler.config import ConfigError, from_environment


def test_defaults() -> None:
    settings = from_environment({})
    assert settings.target_namespaces == ()
    assert settings.workers == 2
    assert settings.namespace == "postgres-operator"
    assert settings.lease_name == "cpk-leader-election-lease"
    assert settings.leader_elect is True
    assert settings.debug is False
    assert settings.feature_gates == dict(features.DEFAULTS)


def test_feature_gates_override_defaults() -> None:
    gates = features.parse("AutoGrowVolumes=true, InstanceSidecars=false,,")
    assert gates["AutoGrowVolumes"] is True
    assert gates["InstanceSidecars"] is False
    assert gates["AutoCreateUserSchema"] is True  # default kept
    assert features.parse("") == dict(features.DEFAULTS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("NoSuchGate=true", "unknown feature gate 'NoSuchGate'"),
        ("AutoGrowVolumes", "unknown feature gate 'AutoGrowVolumes'"),  # no value
        ("AutoGrowVolumes=yes", "not true or false"),
        ("autogrowvolumes=true", "unknown feature gate"),  # names are case-sensitive
    ],
)
def test_bad_feature_gates(text: str, fragment: str) -> None:
    with pytest.raises(features.FeatureGateError, match=fragment):
        features.parse(text)
    with pytest.raises(ConfigError, match="PGO_FEATURE_GATES=") as error:
        from_environment({"PGO_FEATURE_GATES": text})
    assert "AutoGrowVolumes" in str(error.value), "the accepted form lists the gate names"


def test_target_namespaces_union_split_on_any_separator() -> None:
    settings = from_environment(
        {"PGO_TARGET_NAMESPACE": "one", "PGO_TARGET_NAMESPACES": "two, three;one  four"}
    )
    assert settings.target_namespaces == ("four", "one", "three", "two")


def test_values_are_read() -> None:
    settings = from_environment(
        {
            "PGO_WORKERS": "8",
            "PGO_NAMESPACE": "pgo",
            "PGO_CONTROLLER_LEASE_NAME": "my.lease-1",
            "CRUNCHY_DEBUG": "true",
            "RELATED_IMAGE_POSTGRES_17": "registry/postgres:17",
            "RELATED_IMAGE_PGBACKREST": "registry/pgbackrest:2",
            "UNRELATED": "x",
        }
    )
    assert settings.workers == 8
    assert settings.namespace == "pgo"
    assert settings.lease_name == "my.lease-1"
    assert settings.debug is True
    assert settings.images == {
        "POSTGRES_17": "registry/postgres:17",
        "PGBACKREST": "registry/pgbackrest:2",
    }


@pytest.mark.parametrize(
    ("variable", "value", "form"),
    [
        ("PGO_WORKERS", "0", "an integer greater than 0"),
        ("PGO_WORKERS", "two", "an integer greater than 0"),
        ("PGO_WORKERS", "-1", "an integer greater than 0"),
        ("PGO_CONTROLLER_LEASE_NAME", "Not_A_Name", "DNS-1123 subdomain"),
        ("PGO_NAMESPACE", "UPPER", "DNS-1123 label"),
        ("PGO_TARGET_NAMESPACES", "ok,Bad_Name", "namespace names"),
        ("CRUNCHY_DEBUG", "maybe", "true or false"),
    ],
)
def test_invalid_values_name_the_variable_and_the_form(
    variable: str, value: str, form: str
) -> None:
    with pytest.raises(ConfigError) as error:
        from_environment({variable: value})
    message = str(error.value)
    assert message.startswith(f"{variable}=")
    assert form in message
    assert "\n" not in message
    assert error.value.variable == variable
