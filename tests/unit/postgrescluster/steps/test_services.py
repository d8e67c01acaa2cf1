"""The cluster's Services and the primary's Endpoints, as PGO shapes them."""

from __future__ import annotations

from reconciler.intent import Owner
from reconciler.postgrescluster.steps import services

CLUSTER = "postgres-operator.crunchydata.com/cluster"
OWNER = Owner(
    "hippo", "ns", "uid-1", labels={"team": "db", CLUSTER: "not-this"}, annotations={"a": "b"}
)


def test_every_object_is_owned_by_the_cluster_and_carries_its_labels() -> None:
    """Controller reference, the cluster label (operator wins over spec.metadata), user labels."""
    service = services.pod_service(OWNER)
    meta = service["metadata"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "postgres-operator.crunchydata.com/v1beta1",
            "kind": "PostgresCluster",
            "name": "hippo",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {CLUSTER: "hippo", "team": "db"}
    assert meta["annotations"] == {"a": "b"}


def test_pod_service_is_headless_and_publishes_unready_pods() -> None:
    """`hippo-pods` selects the cluster's pods, ready or not."""
    spec = services.pod_service(OWNER)["spec"]
    assert services.pod_service(OWNER)["metadata"]["name"] == "hippo-pods"
    assert spec == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {CLUSTER: "hippo"},
    }


def test_leader_service_has_no_selector_and_takes_the_user_service_spec() -> None:
    """`hippo-ha` is left to Patroni's Endpoints; type, nodePort and metadata from spec.service."""
    service = services.leader_service(
        OWNER, 5432, {"type": "NodePort", "nodePort": 32000, "metadata": {"labels": {"x": "y"}}}
    )
    assert service["metadata"]["name"] == "hippo-ha"
    assert service["metadata"]["labels"]["postgres-operator.crunchydata.com/patroni"] == "hippo-ha"
    assert service["metadata"]["labels"]["x"] == "y"
    assert "selector" not in service["spec"]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {
            "name": "postgres",
            "port": 5432,
            "protocol": "TCP",
            "targetPort": "postgres",
            "nodePort": 32000,
        }
    ]


def test_node_port_on_a_cluster_ip_service_is_flagged_and_dropped() -> None:
    """A nodePort with type ClusterIP is a misconfiguration; the Service gets no nodePort."""
    spec = {"nodePort": 32000}
    assert services.node_port_misconfigured(spec)
    assert not services.node_port_misconfigured({"type": "NodePort", "nodePort": 32000})
    assert "nodePort" not in services.leader_service(OWNER, 5432, spec)["spec"]["ports"][0]


def test_primary_endpoints_point_at_the_leader_service_ip() -> None:
    """`hippo-primary` is headless without selector; its Endpoints hold `hippo-ha`'s ClusterIP."""
    service = services.primary_service(OWNER, 5432)
    assert service["spec"]["clusterIP"] == "None"
    assert "selector" not in service["spec"]
    endpoints = services.primary_endpoints(OWNER, 5432, "10.96.0.7")
    assert endpoints["metadata"]["name"] == "hippo-primary"
    assert endpoints["subsets"] == [
        {
            "addresses": [{"ip": "10.96.0.7"}],
            "ports": [{"name": "postgres", "port": 5432, "protocol": "TCP"}],
        }
    ]


def test_replica_service_selects_patroni_replicas() -> None:
    """`hippo-replicas` selects the cluster's pods labelled role=replica."""
    service = services.replica_service(OWNER, 5432, None)
    assert service["spec"]["selector"] == {
        CLUSTER: "hippo",
        "postgres-operator.crunchydata.com/role": "replica",
    }
    assert service["spec"]["type"] == "ClusterIP"
