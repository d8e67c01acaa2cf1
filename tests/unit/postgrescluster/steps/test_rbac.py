"""The instances' identity: ServiceAccount, Role and RoleBinding `<c>-instance`."""

from __future__ import annotations

from reconciler.intent import Owner
from reconciler.postgrescluster.steps import rbac

OWNER = Owner("hippo", "ns", "uid-1")


def test_instance_rbac_grants_patroni_its_dcs_and_nothing_more() -> None:
    """`hippo-instance`: Endpoints (DCS), pods (labels), services (create), bound to its SA."""
    account, role, binding = rbac.instance_objects(OWNER)
    assert {o["metadata"]["name"] for o in (account, role, binding)} == {"hippo-instance"}
    verbs = {rule["resources"][0]: rule["verbs"] for rule in role["rules"]}
    assert verbs == {
        "endpoints": ["create", "deletecollection", "get", "list", "patch", "watch"],
        "pods": ["get", "list", "patch", "watch"],
        "services": ["create"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hippo-instance"}]
    openshift_role = rbac.instance_objects(OWNER, openshift=True)[1]
    assert any(r["resources"] == ["endpoints/restricted"] for r in openshift_role["rules"])
