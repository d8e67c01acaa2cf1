"""The instance pods' identity: ServiceAccount, Role and RoleBinding `<c>-instance`.

Patroni uses the Kubernetes API as its DCS: it keeps the leader lock and the cluster
configuration in Endpoints, labels its pod with its role and annotates it with its status.
The Role grants exactly that, in the cluster's namespace only.
"""

from __future__ import annotations

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS

# What Patroni does with the API; the operator holds each of these itself, since RBAC lets no
# one grant what they do not have (these rules are part of the operator's ClusterRole).
INSTANCE_RULES = (
    Rule(
        "",
        ("endpoints",),
        ("create", "deletecollection", "get", "list", "patch", "watch"),
        "Granted to Patroni (<c>-instance): its leader lock and configuration in Endpoints.",
    ),
    Rule(
        "",
        ("pods",),
        ("get", "list", "patch", "watch"),
        "Granted to Patroni (<c>-instance): its members' role labels and status annotations.",
    ),
    Rule(
        "",
        ("services",),
        ("create",),
        "Granted to Patroni (<c>-instance): the <scope>-sync Service of synchronous mode.",
    ),
)
OPENSHIFT_RULE = Rule(
    "",
    ("endpoints/restricted",),
    ("create",),
    "Granted to Patroni on OpenShift: Endpoints with arbitrary addresses.",
)


def instance_objects(owner: Owner, *, openshift: bool = False) -> list[JSON]:
    """The ServiceAccount, Role and RoleBinding of the instance pods."""
    name = naming.cluster_instance_rbac(owner.name)
    labels = naming.cluster_labels(owner.name)
    granted = [*INSTANCE_RULES, OPENSHIFT_RULE] if openshift else list(INSTANCE_RULES)
    rules = [rule.policy() for rule in granted]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(owner, name, labels),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(owner, name, labels),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(owner, name, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}],
        },
    ]


async def reconcile(ctx: Context) -> None:
    """Apply the instance ServiceAccount, Role and RoleBinding."""
    account, role, binding = instance_objects(ctx.owner, openshift=bool(ctx.spec.get("openshift")))
    await ctx.apply(SERVICE_ACCOUNTS, account)
    await ctx.apply(ROLES, role)
    await ctx.apply(ROLE_BINDINGS, binding)
