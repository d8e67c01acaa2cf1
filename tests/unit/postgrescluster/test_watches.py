"""How events of owned and related objects map to clusters, and label matching."""

from __future__ import annotations

from reconciler.postgrescluster.watches import _by_cluster, _cluster_of, _matches
from reconciler.runtime.controller import Request

LABEL = "postgres-operator.crunchydata.com/cluster"


def _obj(labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "x", "namespace": "ns", "labels": labels}}


def test_objects_map_to_the_cluster_of_their_label() -> None:
    assert list(_cluster_of(_obj({LABEL: "hippo"}))) == [Request("ns", "hippo")]
    assert list(_cluster_of(_obj({}))) == []
    assert list(_by_cluster(_obj({LABEL: "hippo"}))) == ["ns/hippo"]


def test_label_matching_with_existence_selectors() -> None:
    labeled = _obj({LABEL: "hippo", "role": "master"})
    assert _matches(labeled, {LABEL: "hippo", "role": None})
    assert not _matches(labeled, {LABEL: "rhino"})
    assert not _matches(labeled, {"instance": None})
