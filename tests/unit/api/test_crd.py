"""The CRDs: generated from the models, committed, structural, described, small enough."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.api import crd
from reconciler.api.base import ApiModel
from reconciler.api.structural import KubernetesSchemas, ModelSchemas
from reconciler.cli import main
from tests.api_examples import CRD_DIR

MAX_CRD_BYTES = 1024 * 1024


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


def _schema(kind: crd.Kind) -> dict[str, Any]:
    version = crd.custom_resource_definition(kind)["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crds_are_the_generated_ones() -> None:
    assert crd.differences(CRD_DIR) == [], "run: reconciler crd --write manifests/crd"


def test_crd_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["crd", "--check", str(CRD_DIR)])
    assert exited.value.code == 0
    with pytest.raises(SystemExit):
        main(["crd"])
    assert capsys.readouterr().out.count("kind: CustomResourceDefinition") == 3


def test_generation_is_deterministic() -> None:
    assert crd.rendered() == crd.rendered()


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda kind: kind.plural)
def test_crd_is_small_enough_for_etcd(kind: crd.Kind) -> None:
    size = len(json.dumps(crd.custom_resource_definition(kind)))
    assert size < MAX_CRD_BYTES


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda kind: kind.plural)
def test_schema_is_structural(kind: crd.Kind) -> None:
    for path, node in _nodes(_schema(kind)):
        assert "$ref" not in node, path
        assert "title" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda kind: kind.plural)
def test_every_field_of_ours_is_described(kind: crd.Kind) -> None:
    for field in ("spec", "status"):
        for path, node in _nodes(_schema(kind)["properties"][field], field):
            # Item and map-value nodes are described by their field; below a Kubernetes type
            # only the first level keeps descriptions, by design.
            if not path.endswith(("[]", ".*")) and path.count(".") <= 2:
                assert node.get("description"), path


def test_an_undocumented_field_is_refused() -> None:
    class Undocumented(ApiModel):
        """A model with a field nobody described."""

        count: int = 0

    kubernetes = KubernetesSchemas({}, describe_depth=0)
    with pytest.raises(ValueError, match="count: every field needs a description"):
        ModelSchemas(Undocumented.model_json_schema(by_alias=True), kubernetes).convert()


def test_postgrescluster_schema_facts() -> None:
    spec = _schema(crd.POSTGRES_CLUSTERS)["properties"]["spec"]
    assert spec["required"] == ["postgresVersion", "instances"]
    instances = spec["properties"]["instances"]
    assert instances["x-kubernetes-list-map-keys"] == ["name"]
    assert instances["minItems"] == 1
    instance = instances["items"]["properties"]
    assert instance["replicas"]["default"] == 1
    assert instance["name"]["default"] == ""
    assert spec["properties"]["port"]["default"] == 5432
    assert spec["properties"]["patroni"]["properties"]["dynamicConfiguration"][
        "x-kubernetes-preserve-unknown-fields"
    ]
    rules = instance["dataVolumeClaimSpec"]["x-kubernetes-validations"]
    assert [rule["message"] for rule in rules] == [
        "missing accessModes",
        "missing storage request",
    ]


def test_postgrescluster_version_has_status_and_columns() -> None:
    version = crd.custom_resource_definition(crd.POSTGRES_CLUSTERS)["spec"]["versions"][0]
    assert version["name"] == "v1beta1"
    assert version["storage"]
    assert version["served"]
    assert version["subresources"] == {"status": {}}
    assert [column["name"] for column in version["additionalPrinterColumns"]] == [
        "Ready",
        "Postgres",
        "Age",
    ]
