"""pgBouncer's Kubernetes objects with PGO's names, labels and shapes."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.intent import Owner
from reconciler.pgbouncer import objects

OWNER = Owner("hippo", "ns", "uid-1", labels={"team": "a"}, annotations={"note": "cluster"})
LABELS = {
    "postgres-operator.crunchydata.com/cluster": "hippo",
    "postgres-operator.crunchydata.com/role": "pgbouncer",
}


def _spec(**bouncer: Any) -> dict[str, Any]:
    return {
        "port": 5432,
        "proxy": {"pgBouncer": {"port": 5432, "replicas": 1, **bouncer}},
    }


def test_every_object_is_named_and_labelled_as_pgo() -> None:
    spec = _spec(metadata={"labels": {"tier": "pool"}, "annotations": {"a": "b"}})
    built = [
        objects.config_map(OWNER, spec),
        objects.secret(OWNER, spec, {"pgbouncer-password": "x"}),
        objects.service(OWNER, spec),
        objects.deployment(OWNER, spec, "img", sidecars=False),
        objects.disruption_budget(OWNER, spec, 1),
    ]
    for obj in built:
        meta = obj["metadata"]
        assert meta["name"] == "hippo-pgbouncer"
        assert meta["labels"] == {**LABELS, "team": "a", "tier": "pool"}
        assert meta["annotations"] == {"note": "cluster", "a": "b"}
        assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert built[0]["data"]["pgbouncer-empty"] == ""
    assert built[1]["data"] == {"pgbouncer-password": "eA=="}


def test_service_selects_the_pods_by_port_name_and_takes_the_users_type() -> None:
    service = objects.service(OWNER, _spec())
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": LABELS,
        "ports": [
            {"name": "pgbouncer", "port": 5432, "protocol": "TCP", "targetPort": "pgbouncer"}
        ],
    }
    exposed = objects.service(
        OWNER,
        _spec(
            port=6432,
            service={
                "type": "NodePort",
                "nodePort": 32000,
                "metadata": {"labels": {"svc": "y"}},
                "externalTrafficPolicy": "Local",
            },
        ),
    )
    assert exposed["spec"]["type"] == "NodePort"
    assert exposed["spec"]["ports"][0]["nodePort"] == 32000
    assert exposed["spec"]["ports"][0]["port"] == 6432
    assert exposed["spec"]["externalTrafficPolicy"] == "Local"
    assert exposed["metadata"]["labels"]["svc"] == "y"
    assert objects.node_port_misconfigured(_spec(service={"nodePort": 32000}))
    assert not objects.node_port_misconfigured(_spec(service={"type": "NodePort", "nodePort": 1}))


def test_deployment_runs_pgbouncer_and_its_reloader() -> None:
    spec = _spec(
        replicas=2,
        resources={"limits": {"cpu": "1"}},
        tolerations=[{"operator": "Exists"}],
        priorityClassName="high",
        containers=[{"name": "extra", "image": "x"}],
    )
    deployment = objects.deployment(OWNER, spec, "registry/pgbouncer:1", sidecars=False)
    body = deployment["spec"]
    assert body["replicas"] == 2
    assert body["selector"] == {"matchLabels": LABELS}
    assert body["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
    assert body["revisionHistoryLimit"] == 0
    template = body["template"]
    assert template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == (
        "pgbouncer"
    )
    assert template["metadata"]["labels"] == {**LABELS, "team": "a"}
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["priorityClassName"] == "high"
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    bouncer, reloader = pod["containers"]
    assert bouncer["name"] == "pgbouncer"
    assert bouncer["command"] == ["pgbouncer", "/etc/pgbouncer/~postgres-operator.ini"]
    assert bouncer["ports"] == [{"name": "pgbouncer", "containerPort": 5432, "protocol": "TCP"}]
    assert bouncer["securityContext"]["readOnlyRootFilesystem"] is True
    assert reloader["name"] == "pgbouncer-config"
    # pgBouncer has resources, so the reloader gets small limits: the pod keeps its QoS.
    assert reloader["resources"] == {"limits": {"cpu": "5m", "memory": "16Mi"}}
    assert {v["name"] for v in pod["volumes"]} == {"pgbouncer-config", "tmp"}
    with_sidecars = objects.deployment(OWNER, spec, "img", sidecars=True)
    assert [c["name"] for c in with_sidecars["spec"]["template"]["spec"]["containers"]] == [
        "pgbouncer",
        "pgbouncer-config",
        "extra",
    ]
    shut = objects.deployment(OWNER, {**spec, "shutdown": True}, "img", sidecars=False)
    assert shut["spec"]["replicas"] == 0
    bare = objects.deployment(
        OWNER, {**_spec(), "disableDefaultPodScheduling": True}, "img", sidecars=False
    )
    assert "topologySpreadConstraints" not in bare["spec"]["template"]["spec"]
    assert bare["spec"]["template"]["spec"]["containers"][1]["resources"] == {}


@pytest.mark.parametrize(
    ("bouncer", "expected"),
    [
        ({"replicas": 1}, None),
        ({"replicas": 2}, 1),
        ({"replicas": 3, "minAvailable": 2}, 2),
        ({"replicas": 2, "minAvailable": 0}, None),
        ({"replicas": 2, "minAvailable": "50%"}, "50%"),
        ({"replicas": 0, "minAvailable": "50%"}, None),
    ],
)
def test_disruption_minimum(bouncer: dict[str, Any], expected: Any) -> None:
    assert objects.disruption_minimum(bouncer) == expected


def test_objects_need_pooling_on() -> None:
    with pytest.raises(ValueError, match=r"spec\.proxy\.pgBouncer"):
        objects.config_map(OWNER, {"port": 5432})
