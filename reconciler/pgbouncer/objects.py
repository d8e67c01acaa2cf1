"""pgBouncer's Kubernetes objects, named, labelled and shaped as PGO's: all `<c>-pgbouncer`,
labelled with the cluster and role `pgbouncer`, carrying `spec.metadata` and
`spec.proxy.pgBouncer.metadata`."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.containers import RESTRICTED_SECURITY_CONTEXT, mount, preferred_spread
from reconciler.intent import Owner, merged_labels_and_annotations, metadata
from reconciler.pgbouncer import config
from reconciler.runtime.client import JSON

TMP_SIZE_LIMIT = "16Mi"
# The reloader's share when pgBouncer has resources: it must not change the pod's QoS class.
RELOADER_LIMITS = {"cpu": "5m", "memory": "16Mi"}


def _bouncer(spec: JSON) -> JSON:
    bouncer = config.settings(spec)
    if bouncer is None:
        raise ValueError("spec.proxy.pgBouncer is not set: there are no pgBouncer objects")
    return bouncer


def _metadata(owner: Owner, spec: JSON, extra: Mapping[str, Any] | None = None) -> JSON:
    bouncer = _bouncer(spec)
    merged = {
        key: {
            **((bouncer.get("metadata") or {}).get(key) or {}),
            **((extra or {}).get(key) or {}),
        }
        for key in ("labels", "annotations")
    }
    return metadata(
        owner, naming.pgbouncer(owner.name), naming.pgbouncer_labels(owner.name), extra=merged
    )


def config_map(owner: Owner, spec: JSON) -> JSON:
    """`<c>-pgbouncer`: our configuration file and the empty one it includes."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, spec),
        "data": {config.EMPTY_KEY: "", config.INI_KEY: config.ini(owner.name, spec)},
    }


def secret(owner: Owner, spec: JSON, data: Mapping[str, str | bytes]) -> JSON:
    """`<c>-pgbouncer`: the role's password, verifier and auth file, and (without a
    `customTLSSecret`) the frontend certificate."""
    encoded = {
        key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
        for key, value in sorted(data.items())
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(owner, spec),
        "type": "Opaque",
        "data": encoded,
    }


def node_port_misconfigured(spec: JSON) -> bool:
    """Whether `service.nodePort` is set on a ClusterIP Service (Kubernetes refuses it)."""
    service = _bouncer(spec).get("service") or {}
    return service.get("nodePort") is not None and service.get("type", "ClusterIP") == "ClusterIP"


_SERVICE_FIELDS = ("externalTrafficPolicy", "internalTrafficPolicy", "ipFamilyPolicy", "ipFamilies")


def service(owner: Owner, spec: JSON) -> JSON:
    """`<c>-pgbouncer`: the pgBouncer pods behind one port, named so that pods may differ in
    number during a rolling update; type and node port from `service`."""
    bouncer = _bouncer(spec)
    user = bouncer.get("service") or {}
    port: JSON = {
        "name": naming.PORT_PGBOUNCER,
        "port": bouncer.get("port", 5432),
        "protocol": "TCP",
        "targetPort": naming.PORT_PGBOUNCER,
    }
    kind = user.get("type") or "ClusterIP"
    if kind != "ClusterIP" and user.get("nodePort") is not None:
        port["nodePort"] = user["nodePort"]
    body: JSON = {
        "type": kind,
        "ports": [port],
        "selector": naming.pgbouncer_labels(owner.name),
    }
    body.update({key: user[key] for key in _SERVICE_FIELDS if user.get(key) is not None})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, spec, user.get("metadata")),
        "spec": body,
    }


def disruption_budget(owner: Owner, spec: JSON, minimum: Any) -> JSON:
    """`<c>-pgbouncer`: at least `minimum` pgBouncer pods through voluntary disruptions."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, spec),
        "spec": {
            "minAvailable": minimum,
            "selector": {"matchLabels": naming.pgbouncer_labels(owner.name)},
        },
    }


def _containers(spec: JSON, image: str, *, sidecars: bool) -> list[JSON]:
    bouncer = _bouncer(spec)
    pull_policy = (
        {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    )
    mounts = [mount("pgbouncer-config", config.DIRECTORY, read_only=True), mount("tmp", "/tmp")]
    resources = bouncer.get("resources") or {}
    reloader_resources = ((bouncer.get("sidecars") or {}).get("pgbouncerConfig") or {}).get(
        "resources"
    )
    if reloader_resources is None:
        reloader_resources = (
            {"limits": RELOADER_LIMITS}
            if resources.get("limits") or resources.get("requests")
            else {}
        )
    containers: list[JSON] = [
        {
            "name": naming.CONTAINER_PGBOUNCER,
            "image": image,
            **pull_policy,
            "command": ["pgbouncer", f"{config.DIRECTORY}/{config.INI_PATH}"],
            "ports": [
                {
                    "name": naming.PORT_PGBOUNCER,
                    "containerPort": bouncer.get("port", 5432),
                    "protocol": "TCP",
                }
            ],
            "resources": resources,
            "securityContext": RESTRICTED_SECURITY_CONTEXT,
            "volumeMounts": mounts,
        },
        {
            "name": naming.CONTAINER_PGBOUNCER_CONFIG,
            "image": image,
            **pull_policy,
            "command": config.reload_command(),
            "resources": reloader_resources,
            "securityContext": RESTRICTED_SECURITY_CONTEXT,
            "volumeMounts": mounts,
        },
    ]
    if sidecars:
        containers += bouncer.get("containers") or []
    return containers


def deployment(owner: Owner, spec: JSON, image: str, *, sidecars: bool) -> JSON:
    """`<c>-pgbouncer`: pgBouncer and its reloader; new pods start before old ones stop
    (maxUnavailable 0), configuration and certificates reach running pods without a restart.
    `sidecars`: the PGBouncerSidecars feature gate (adds `containers`)."""
    bouncer = _bouncer(spec)
    labels = naming.pgbouncer_labels(owner.name)
    pod_labels, pod_annotations = merged_labels_and_annotations(
        owner,
        labels,
        {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_PGBOUNCER},
        extra=bouncer.get("metadata"),
    )
    topology = list(bouncer.get("topologySpreadConstraints") or [])
    if not spec.get("disableDefaultPodScheduling"):
        topology += preferred_spread({"matchLabels": labels})
    pod: JSON = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "shareProcessNamespace": True,
        "restartPolicy": "Always",
        "securityContext": {"fsGroupChangePolicy": "OnRootMismatch"},
        "containers": _containers(spec, image, sidecars=sidecars),
        "volumes": [
            {
                "name": "pgbouncer-config",
                "projected": {"sources": config.config_sources(owner.name, spec)},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
        ],
    }
    optional = {
        "affinity": bouncer.get("affinity"),
        "tolerations": bouncer.get("tolerations"),
        "priorityClassName": bouncer.get("priorityClassName"),
        "imagePullSecrets": spec.get("imagePullSecrets"),
        "topologySpreadConstraints": topology,
    }
    pod.update({key: value for key, value in optional.items() if value})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, spec),
        "spec": {
            "replicas": 0 if spec.get("shutdown") else bouncer.get("replicas", 1),
            "revisionHistoryLimit": 0,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": pod,
            },
        },
    }


def disruption_minimum(bouncer: Mapping[str, Any]) -> Any | None:
    """The budget's minAvailable (explicit, else 1 with more than one replica), or None when
    it would protect no pod (0, or a percentage of no replicas rounding to 0)."""
    replicas = int(bouncer.get("replicas", 1))
    minimum = bouncer.get("minAvailable")
    if minimum is None:
        minimum = 1 if replicas > 1 else 0
    if isinstance(minimum, str) and minimum.endswith("%"):
        scaled = math.ceil(int(minimum[:-1]) * replicas / 100)
    else:
        scaled = int(minimum)
    return minimum if scaled > 0 else None
