"""Subreconciler: the instance sets, one StatefulSet (one pod) per instance.

Per set: create instances up to `replicas` (random names, PGO's form), apply each instance's
certificates, ConfigMap, volumes and StatefulSet, keep a disruption budget, and remove surplus
instances, never the primary. Sets removed from the spec are removed whole. Shutdown stops the
replicas first and the primary last, and records it so that it starts first again.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any

from reconciler import x509
from reconciler.postgrescluster import (
    certificates,
    instance_objects,
    instance_pod,
    naming,
    patroni,
    pki,
)
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.intent import JSON
from reconciler.runtime import quantity
from reconciler.runtime.client import InvalidError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    SECRETS,
    STATEFUL_SETS,
)

PENDING = "pending-instances"
RESIZE_ERRORS = "resize-errors"


def _instance(obj: JSON) -> str:
    return str(obj["metadata"]["labels"][naming.LABEL_INSTANCE])


def _set_of(obj: JSON) -> str:
    return str(obj["metadata"]["labels"].get(naming.LABEL_INSTANCE_SET, ""))


def pod_ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_primary(pod: JSON) -> bool:
    """Whether Patroni labelled the pod as its leader."""
    return (pod["metadata"].get("labels") or {}).get(
        naming.LABEL_ROLE
    ) == naming.ROLE_PATRONI_LEADER


def image(ctx: Context) -> str | None:
    """The PostgreSQL image: `spec.image`, else `RELATED_IMAGE_POSTGRES_<v>[_GIS_<postgis>]`."""
    if ctx.spec.get("image"):
        return str(ctx.spec["image"])
    return ctx.environment.images.get(image_key(ctx.spec))


def image_key(spec: JSON) -> str:
    """The name, without `RELATED_IMAGE_`, of the variable giving the cluster's image."""
    key = f"POSTGRES_{spec['postgresVersion']}"
    if spec.get("postGISVersion"):
        key += f"_GIS_{spec['postGISVersion']}"
    return key


def choose_kept(names: list[str], wanted: int, primary: str | None) -> list[str]:
    """Which instances a set keeps when it shrinks: the primary first, then by name."""
    ordered = sorted(names, key=lambda n: (n != primary, n))
    return sorted(ordered[:wanted])


def statefulset_replicas(
    instance: str, *, shutdown: bool, startup_instance: str, pods_left: int
) -> int:
    """PGO's rule: with a recorded startup instance only it runs, and during a shutdown it
    stops last, once no other instance pod is left."""
    if not startup_instance:
        return 1
    if instance != startup_instance:
        return 0
    if shutdown and pods_left <= 1:
        return 0
    return 1


async def reconcile(ctx: Context) -> None:
    """Converge every instance set, then report `status.instances`."""
    statefulsets = ctx.cluster_objects(STATEFUL_SETS, {naming.LABEL_INSTANCE: None})
    pods = ctx.cluster_objects(PODS, {naming.LABEL_INSTANCE: None})
    primary = next((_instance(p) for p in pods if is_primary(p)), None)
    by_set = _known_instances(ctx, statefulsets)
    _record_startup_instance(ctx, primary, sorted(s["metadata"]["name"] for s in statefulsets))
    postgres_image = image(ctx)
    assert postgres_image is not None, "the controller checks images before instances"
    root: x509.Certificate = ctx.shared["root"]
    wanted_sets = {s["name"]: s for s in ctx.spec["instances"]}
    for set_name, instance_set in wanted_sets.items():
        names = _grow(ctx, set_name, by_set.get(set_name, set()), instance_set["replicas"])
        kept = choose_kept(sorted(names), instance_set["replicas"], primary)
        for instance in kept:
            await _apply_instance(
                ctx, instance_set, instance, image=postgres_image, root=root, pods_left=len(pods)
            )
        for instance in sorted(names - set(kept)):
            await _remove_instance(ctx, instance)
        await _reconcile_budget(
            ctx, set_name, instance_objects.disruption_budget(ctx.owner, instance_set)
        )
    for set_name, names in by_set.items():
        if set_name not in wanted_sets:
            for instance in sorted(names):
                await _remove_instance(ctx, instance)
            await _reconcile_budget(ctx, set_name, None)
    ctx.status["instances"] = observed_instances(statefulsets, pods, list(wanted_sets))
    _report_volumes(ctx)
    if errors := ctx.shared.get(RESIZE_ERRORS):
        await ctx.warn("PersistentVolumeResizeError", "; ".join(errors))


def _known_instances(ctx: Context, statefulsets: list[JSON]) -> dict[str, set[str]]:
    """The instances of each set: those with a StatefulSet; those whose data volume outlived
    its StatefulSet (deleted by someone: the instance comes back under its name, onto its
    data); and those created but not cached yet (else a quick second reconcile would create
    the same instances again)."""
    pending: dict[str, str] = ctx.memory.setdefault(PENDING, {})
    by_set: dict[str, set[str]] = defaultdict(set)
    for sts in statefulsets:
        by_set[_set_of(sts)].add(sts["metadata"]["name"])
        pending.pop(sts["metadata"]["name"], None)
    volumes = ctx.cluster_objects(
        PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_ROLE: naming.ROLE_POSTGRES_DATA}
    )
    for claim in volumes:
        if not claim["metadata"].get("deletionTimestamp") and _set_of(claim):
            by_set[_set_of(claim)].add(_instance(claim))
    for name, set_name in pending.items():
        by_set[set_name].add(name)
    return by_set


def _grow(ctx: Context, set_name: str, names: set[str], wanted: int) -> set[str]:
    """The set's instance names, with new ones generated up to `wanted`."""
    pending: dict[str, str] = ctx.memory[PENDING]
    names = set(names)
    while len(names) < wanted:
        name = naming.generate_instance(ctx.name, set_name)
        if name not in names and ctx.cached(STATEFUL_SETS, name) is None:
            names.add(name)
            pending[name] = set_name
    return names


async def _reconcile_budget(ctx: Context, set_name: str, budget: JSON | None) -> None:
    if budget is not None:
        await ctx.apply(POD_DISRUPTION_BUDGETS, budget)
        return
    name = naming.instance_set_disruption_budget(ctx.name, set_name)
    if (live := ctx.cached(POD_DISRUPTION_BUDGETS, name)) is not None:
        await ctx.delete(POD_DISRUPTION_BUDGETS, live)


def _record_startup_instance(ctx: Context, primary: str | None, instances: list[str]) -> None:
    """Remember, on shutdown, which instance must start first; forget once it runs again."""
    if ctx.spec.get("shutdown"):
        if not ctx.status.get("startupInstance") and instances:
            chosen = primary or instances[0]
            sts = ctx.cached(STATEFUL_SETS, chosen)
            ctx.status["startupInstance"] = chosen
            ctx.status["startupInstanceSet"] = _set_of(sts) if sts else ""
        return
    startup = ctx.status.get("startupInstance")
    if startup:
        pod = ctx.cached(PODS, naming.instance_pod(startup))
        if pod is None or pod_ready(pod):
            ctx.status.pop("startupInstance", None)
            ctx.status.pop("startupInstanceSet", None)


async def _apply_instance(
    ctx: Context,
    instance_set: JSON,
    instance: str,
    *,
    image: str,
    root: x509.Certificate,
    pods_left: int,
) -> None:
    owner, spec = ctx.owner, ctx.spec
    extra = instance_set.get("metadata")
    now = datetime.datetime.now(datetime.UTC)
    common_name, names = certificates.instance_names(owner, instance)
    leaf = certificates.read(
        ctx.cached(SECRETS, naming.instance_certificates(instance)), "dns.crt", "dns.key"
    )
    if leaf is None or not pki.leaf_is_current(leaf, root, common_name, names, now):
        leaf = pki.issue_leaf(root, common_name, names, now)
    await ctx.apply(
        SECRETS,
        certificates.instance_secret(
            owner, instance_set["name"], instance, root, leaf, extra=extra
        ),
    )
    separate_wal = bool(instance_set.get("walVolumeClaimSpec"))
    document = patroni.instance_yaml(
        spec["postgresVersion"],
        separate_wal_volume=separate_wal,
        bootstrapped=ctx.bootstrapped,
        replica_from_backup=False,
    )
    await ctx.apply(
        CONFIG_MAPS, instance_objects.config_map(owner, instance_set, instance, document)
    )
    await _apply_volume(ctx, instance_objects.data_volume(owner, instance_set, instance))
    if separate_wal:
        await _apply_volume(
            ctx, instance_objects.data_volume(owner, instance_set, instance, wal=True)
        )
    replicas = statefulset_replicas(
        instance,
        shutdown=bool(spec.get("shutdown")),
        startup_instance=str(ctx.status.get("startupInstance") or ""),
        pods_left=pods_left,
    )
    await ctx.apply(
        STATEFUL_SETS,
        instance_pod.statefulset(
            owner,
            spec,
            instance_set,
            instance,
            image=image,
            replicas=replicas,
            sidecars=ctx.environment.instance_sidecars,
        ),
    )


async def _apply_volume(ctx: Context, claim: JSON) -> None:
    """Apply a volume claim; a refused change (a smaller size, a class that cannot expand)
    is reported, and the instance goes on with the volume it has."""
    try:
        await ctx.apply(PERSISTENT_VOLUME_CLAIMS, claim)
    except InvalidError as error:
        ctx.shared.setdefault(RESIZE_ERRORS, []).append(
            f"{claim['metadata']['name']}: {error.message}"
        )


def _report_volumes(ctx: Context) -> None:
    """Conditions PersistentVolumeResizing (a larger size is on its way) and
    PersistentVolumeResizeError (a size change was refused), as PGO names them."""
    growing = []
    for claim in ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_INSTANCE: None}):
        requested = quantity.parse(claim["spec"]["resources"]["requests"]["storage"])
        capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        current = quantity.parse(capacity) if capacity else None
        if requested is not None and current is not None and requested > current:
            growing.append(claim["metadata"]["name"])
    if growing:
        message = f"Resizing {', '.join(sorted(growing))}"
        ctx.set_condition("PersistentVolumeResizing", "True", "Resizing", message)
    else:
        ctx.clear_condition("PersistentVolumeResizing")
    if errors := ctx.shared.get(RESIZE_ERRORS):
        message = "; ".join(errors)
        ctx.set_condition("PersistentVolumeResizeError", "True", "ResizeRefused", message)
    else:
        ctx.clear_condition("PersistentVolumeResizeError")


async def _remove_instance(ctx: Context, instance: str) -> None:
    """Delete an instance the spec no longer has room for: its StatefulSet and its objects.

    Its volumes go too, as in PGO: shrinking a set is the user asking for fewer copies.
    """
    selector: dict[str, str | None] = {naming.LABEL_INSTANCE: instance}
    for resource in (STATEFUL_SETS, CONFIG_MAPS, SECRETS, PERSISTENT_VOLUME_CLAIMS):
        for obj in ctx.cluster_objects(resource, selector):
            await ctx.delete(resource, obj)
    ctx.memory.get(PENDING, {}).pop(instance, None)


def observed_instances(statefulsets: list[JSON], pods: list[JSON], sets: list[str]) -> list[JSON]:
    """`status.instances`: per set, pods, ready pods and pods at the current revision."""
    update_revision = {
        s["metadata"]["name"]: (s.get("status") or {}).get("updateRevision") for s in statefulsets
    }
    counts: dict[str, dict[str, Any]] = {
        name: {"name": name, "replicas": 0, "readyReplicas": 0, "updatedReplicas": 0}
        for name in sets
    }
    for pod in pods:
        entry = counts.get(_set_of(pod))
        if entry is None:
            continue
        entry["replicas"] += 1
        entry["readyReplicas"] += int(pod_ready(pod))
        revision = (pod["metadata"].get("labels") or {}).get("controller-revision-hash")
        entry["updatedReplicas"] += int(
            revision is not None and revision == update_revision.get(_instance(pod))
        )
    return [counts[name] for name in sorted(counts)]
