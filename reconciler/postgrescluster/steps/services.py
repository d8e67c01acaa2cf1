"""The cluster's Services, as PGO names and shapes them.

- `<c>-pods`: headless, selects every pod of the cluster; gives pods their DNS names.
- `<c>-ha`: no selector; Patroni writes its Endpoints (the leader). `spec.service` applies here.
- `<c>-ha-config`: headless, no selector; keeps Patroni's configuration Endpoints alive.
- `<c>-primary`: headless, no selector; its Endpoints, written by us, hold the ClusterIP of
  `<c>-ha`, so the name resolves to the leader wherever Patroni moves it.
- `<c>-replicas`: selects the pods Patroni labels `role=replica`. `spec.replicaService` applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import ENDPOINTS, SERVICES

_SERVICE_SPEC_FIELDS = (
    "ipFamilyPolicy",
    "ipFamilies",
    "internalTrafficPolicy",
    "externalTrafficPolicy",
)


def _service(
    owner: Owner, name: str, labels: Mapping[str, str], spec: JSON, extra: JSON | None = None
) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            owner, name, {**naming.cluster_labels(owner.name), **labels}, extra=extra
        ),
        "spec": spec,
    }


def _postgres_port(port: int) -> JSON:
    return {
        "name": naming.PORT_POSTGRES,
        "port": port,
        "protocol": "TCP",
        "targetPort": naming.PORT_POSTGRES,
    }


def node_port_misconfigured(service_spec: Mapping[str, Any] | None) -> bool:
    """Whether the user set a nodePort on a Service whose type cannot have one."""
    spec = service_spec or {}
    return spec.get("nodePort") is not None and spec.get("type", "ClusterIP") == "ClusterIP"


def _exposed(
    owner: Owner,
    name: str,
    *,
    labels: Mapping[str, str],
    port: int,
    service_spec: Mapping[str, Any] | None,
    selector: Mapping[str, str] | None,
) -> JSON:
    user = service_spec or {}
    kind = user.get("type") or "ClusterIP"
    ports = _postgres_port(port)
    if kind != "ClusterIP" and user.get("nodePort") is not None:
        ports["nodePort"] = user["nodePort"]
    spec: JSON = {"type": kind, "ports": [ports]}
    spec.update({k: user[k] for k in _SERVICE_SPEC_FIELDS if user.get(k) is not None})
    if selector is not None:
        spec["selector"] = dict(selector)
    return _service(owner, name, labels, spec, extra=user.get("metadata"))


def pod_service(owner: Owner) -> JSON:
    """`<c>-pods`: every pod of the cluster gets a DNS name, ready or not."""
    return _service(
        owner,
        naming.cluster_pod_service(owner.name),
        {},
        {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": naming.cluster_labels(owner.name),
        },
    )


def leader_service(owner: Owner, port: int, service_spec: Mapping[str, Any] | None) -> JSON:
    """`<c>-ha`: the Service whose Endpoints Patroni keeps pointed at the leader."""
    scope = naming.patroni_scope(owner.name)
    return _exposed(
        owner,
        scope,
        labels={naming.LABEL_PATRONI: scope},
        port=port,
        service_spec=service_spec,
        selector=None,
    )


def distributed_configuration_service(owner: Owner) -> JSON:
    """`<c>-ha-config`: a headless Service without selector, so Patroni's Endpoints persist."""
    scope = naming.patroni_scope(owner.name)
    return _service(
        owner,
        naming.patroni_distributed_configuration(owner.name),
        {naming.LABEL_PATRONI: scope},
        {"clusterIP": "None"},
    )


def primary_service(owner: Owner, port: int) -> JSON:
    """`<c>-primary`: headless and selector-less; its Endpoints are `primary_endpoints`."""
    return _service(
        owner,
        naming.cluster_primary_service(owner.name),
        {naming.LABEL_ROLE: naming.ROLE_PRIMARY},
        {"clusterIP": "None", "ports": [_postgres_port(port)]},
    )


def primary_endpoints(owner: Owner, port: int, leader_cluster_ip: str) -> JSON:
    """The Endpoints of `<c>-primary`: the ClusterIP of `<c>-ha`, which follows the leader."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": metadata(
            owner,
            naming.cluster_primary_service(owner.name),
            {**naming.cluster_labels(owner.name), naming.LABEL_ROLE: naming.ROLE_PRIMARY},
        ),
        "subsets": [
            {
                "addresses": [{"ip": leader_cluster_ip}],
                "ports": [{"name": naming.PORT_POSTGRES, "port": port, "protocol": "TCP"}],
            }
        ],
    }


def replica_service(owner: Owner, port: int, service_spec: Mapping[str, Any] | None) -> JSON:
    """`<c>-replicas`: balances over the pods Patroni labels as replicas."""
    selector = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_ROLE: naming.ROLE_PATRONI_REPLICA,
    }
    return _exposed(
        owner,
        naming.cluster_replica_service(owner.name),
        labels={naming.LABEL_ROLE: naming.ROLE_REPLICA},
        port=port,
        service_spec=service_spec,
        selector=selector,
    )


async def reconcile(ctx: Context) -> None:
    """Apply the five Services and the primary's Endpoints; flag a misplaced nodePort."""
    owner, spec = ctx.owner, ctx.spec
    port = spec["port"]
    for key in ("service", "replicaService"):
        if node_port_misconfigured(spec.get(key)):
            message = (
                f"spec.{key}.nodePort is set but spec.{key}.type is ClusterIP; "
                f"set spec.{key}.type to NodePort or LoadBalancer, or remove the nodePort"
            )
            await ctx.warn(naming.REASON_MISCONFIGURED_CLUSTER_IP, message)
            ctx.set_condition(
                naming.CONDITION_SERVICES_CONFIGURED,
                "False",
                naming.REASON_MISCONFIGURED_CLUSTER_IP,
                message,
            )
            break
    else:
        ctx.clear_condition(naming.CONDITION_SERVICES_CONFIGURED)
    await ctx.apply(SERVICES, pod_service(owner))
    leader = await ctx.apply(SERVICES, leader_service(owner, port, spec.get("service")))
    await ctx.apply(SERVICES, distributed_configuration_service(owner))
    await ctx.apply(SERVICES, primary_service(owner, port))
    cluster_ip = (leader.get("spec") or {}).get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        await ctx.apply(ENDPOINTS, primary_endpoints(owner, port, cluster_ip))
    await ctx.apply(SERVICES, replica_service(owner, port, spec.get("replicaService")))
