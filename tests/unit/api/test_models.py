"""The models parse every example, keep what they do not know, and dump what they parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from reconciler.api import PGAdmin, PGUpgrade, PostgresCluster, parse_postgres_cluster
from tests.api_examples import EXAMPLES, hippo, load

MODELS: dict[str, type[BaseModel]] = {
    "PostgresCluster": PostgresCluster,
    "PGUpgrade": PGUpgrade,
    "PGAdmin": PGAdmin,
}


def test_there_are_enough_examples() -> None:
    kinds = [load(path)["kind"] for path in EXAMPLES]
    assert kinds.count("PostgresCluster") >= 15


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_parses_and_round_trips(path: Path) -> None:
    raw = load(path)
    model = MODELS[raw["kind"]].model_validate(raw)
    assert model.model_dump(mode="json", by_alias=True, exclude_unset=True) == raw


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_has_a_one_line_description(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ")
    assert len(first) > 20


def test_fields_use_pgo_names() -> None:
    raw = load(Path(__file__).parents[3] / "manifests/examples/s3-and-volume-repos.yaml")
    cluster = parse_postgres_cluster(raw)
    assert cluster.spec.backups is not None
    pgbackrest = cluster.spec.backups.pgbackrest
    assert pgbackrest is not None
    assert pgbackrest.global_ == raw["spec"]["backups"]["pgbackrest"]["global"]
    assert [repo.name for repo in pgbackrest.repos] == ["repo1", "repo2"]
    assert pgbackrest.repos[1].s3 is not None
    assert pgbackrest.repos[1].s3.bucket == "hippo-backups"


def test_unknown_fields_are_kept() -> None:
    raw = hippo()
    raw["spec"]["someFutureField"] = {"enabled": True}
    raw["spec"]["instances"][0]["futureSetting"] = 3
    cluster = parse_postgres_cluster(raw)
    assert cluster.dump() == raw


def test_embedded_kubernetes_types_are_kept_as_given() -> None:
    raw = load(Path(__file__).parents[3] / "manifests/examples/anti-affinity-required.yaml")
    cluster = parse_postgres_cluster(raw)
    assert cluster.spec.instances[0].affinity == raw["spec"]["instances"][0]["affinity"]


def test_status_parses() -> None:
    raw = hippo()
    raw["status"] = {
        "observedGeneration": 3,
        "instances": [{"name": "instance1", "replicas": 1, "readyReplicas": 1}],
        "pgbackrest": {"repos": [{"name": "repo1", "stanzaCreated": True}]},
        "patroni": {"systemIdentifier": "7340000000000000000"},
        "conditions": [{"type": "PGBackRestReplicaCreate", "status": "True"}],
    }
    cluster = parse_postgres_cluster(raw)
    assert cluster.status is not None
    assert cluster.status.instances is not None
    assert cluster.status.instances[0].ready_replicas == 1
    assert cluster.dump() == raw


set_names = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
volume = st.fixed_dictionaries(
    {
        "accessModes": st.just(["ReadWriteOnce"]),
        "resources": st.fixed_dictionaries(
            {"requests": st.fixed_dictionaries({"storage": st.sampled_from(["1Gi", "5Gi"])})}
        ),
    }
)
instance_set = st.fixed_dictionaries(
    {"dataVolumeClaimSpec": volume},
    optional={
        "name": set_names,
        "replicas": st.integers(1, 9),
        "minAvailable": st.one_of(st.integers(0, 3), st.just("50%")),
        "metadata": st.fixed_dictionaries({"labels": st.dictionaries(set_names, set_names)}),
    },
)
user = st.fixed_dictionaries(
    {"name": set_names},
    optional={
        "databases": st.lists(set_names, unique=True, max_size=3),
        "options": st.sampled_from(["SUPERUSER", "CREATEDB", "CONNECTION LIMIT 5"]),
        "password": st.fixed_dictionaries({"type": st.sampled_from(["ASCII", "AlphaNumeric"])}),
    },
)
spec = st.fixed_dictionaries(
    {
        "postgresVersion": st.integers(11, 18),
        "instances": st.lists(instance_set, min_size=1, max_size=3),
    },
    optional={
        "port": st.integers(1024, 65535),
        "users": st.lists(user, max_size=3),
        "shutdown": st.booleans(),
        "config": st.fixed_dictionaries(
            {"parameters": st.dictionaries(set_names, st.one_of(st.integers(), set_names))}
        ),
        "patroni": st.fixed_dictionaries(
            {},
            optional={
                "syncPeriodSeconds": st.integers(1, 60),
                "dynamicConfiguration": st.dictionaries(set_names, st.integers()),
            },
        ),
    },
)


@given(spec)
def test_dump_parse_round_trips(raw_spec: dict[str, Any]) -> None:
    raw = {"apiVersion": PostgresCluster.model_fields["api_version"].default, "spec": raw_spec}
    raw["kind"] = "PostgresCluster"
    raw["metadata"] = {"name": "hippo"}
    cluster = parse_postgres_cluster(raw)
    assert cluster.dump() == raw
    assert parse_postgres_cluster(cluster.dump()) == cluster
