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

from reconciler import naming
from reconciler.patroni import config as patroni_config
from reconciler.pgbackrest import config as pgbackrest_config
from reconciler.pgbackrest import restore
from reconciler.pgbackrest.postgres import backups_enabled, standby_repo
from reconciler.pgmonitor import exporter
from reconciler.pki import authority, certificates
from reconciler.postgrescluster import autogrow, data_source, instance_objects, instance_pod
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import instance_of, instance_set_of, pod_ready
from reconciler.postgrescluster.stop import stop_instances
from reconciler.runtime import drift, quantity
from reconciler.runtime.client import JSON, InvalidError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    SECRETS,
    STATEFUL_SETS,
)


def choose_kept(names: list[str], wanted: int, first: str | None) -> list[str]:
    """Which instances a set keeps when it shrinks: `first` (the primary) first, then by
    name."""
    ordered = sorted(names, key=lambda n: (n != first, n))
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
    """Converge every instance set, then report `status.instances`. While a new cluster
    waits for its restore, no instance exists yet; while an in-place restore runs, the
    instances only stop, the primary last."""
    statefulsets, pods = ctx.instances.statefulsets, ctx.instances.pods
    wanted_sets = {s["name"]: s for s in ctx.spec["instances"]}
    desired = await _desired_sizes(ctx)
    if data_source.awaiting_data(ctx.spec, ctx.status):
        ctx.status["instances"] = observed_instances(statefulsets, pods, list(wanted_sets))
        return
    leader = ctx.instances.primary
    primary = instance_of(leader) if leader is not None else None
    if restore.restoring_in_place(ctx.status):
        # Only stopped: what the restore removes must not come back through an apply here.
        _record_startup_instance(ctx, primary, ctx.instances.names, stopping=True)
        await stop_instances(ctx.client, ctx.namespace, ctx.instances)
        ctx.status["instances"] = autogrow.with_desired(
            observed_instances(statefulsets, pods, list(wanted_sets)), desired
        )
        return
    by_set = _known_instances(ctx, statefulsets)
    _record_startup_instance(ctx, primary, ctx.instances.names, stopping=False)
    # With no primary running (a shutdown, a restore that failed), the instance recorded to
    # start first holds the newest data: a set that shrinks meanwhile keeps it.
    keep_first = primary or str(ctx.status.get("startupInstance") or "") or None
    postgres_image = ctx.postgres_image
    assert postgres_image is not None, "the controller checks images before instances"
    resize_errors: list[str] = []
    for set_name, instance_set in wanted_sets.items():
        names = _grow(ctx, set_name, by_set.get(set_name, set()), instance_set["replicas"])
        kept = choose_kept(sorted(names), instance_set["replicas"], keep_first)
        removed = sorted(names - set(kept))
        sizing = autogrow.data_volume_size(
            ctx.name,
            instance_set,
            (desired.get(set_name) or {}).values(),
            enabled=ctx.environment.auto_grow_volumes,
        )
        for instance in kept:
            await _apply_instance(
                ctx,
                instance_set,
                instance,
                image=postgres_image,
                pods_left=len(pods),
                resize_errors=resize_errors,
                sizing=sizing,
            )
        for instance in removed:
            await _remove_instance(ctx, instance)
        await _reconcile_budget(
            ctx, set_name, instance_objects.disruption_budget(ctx.owner, instance_set)
        )
    for set_name, names in by_set.items():
        if set_name not in wanted_sets:
            for instance in sorted(names):
                await _remove_instance(ctx, instance)
            await _reconcile_budget(ctx, set_name, None)
    ctx.status["instances"] = autogrow.with_desired(
        observed_instances(statefulsets, pods, list(wanted_sets)), desired
    )
    _report_volumes(ctx, resize_errors)
    if resize_errors:
        await ctx.warn(naming.REASON_PV_RESIZE_ERROR, "; ".join(resize_errors))


async def _desired_sizes(ctx: Context) -> dict[str, dict[str, str]]:
    """With AutoGrowVolumes: the data volume size each instance asks for (kept in status), and
    a `VolumeAutoGrow` Event for each that asks for more than before."""
    if not ctx.environment.auto_grow_volumes:
        return {}
    previous = autogrow.stored_sizes(ctx.status.get("instances") or [])
    desired = autogrow.desired_sizes(ctx.instances.pods, previous, ctx.instances.names)
    for event in autogrow.growth_events(ctx.name, ctx.spec["instances"], desired, previous):
        await ctx.recorder.event(ctx.raw, event.type, event.reason, event.message)
    return desired


def _known_instances(ctx: Context, statefulsets: list[JSON]) -> dict[str, set[str]]:
    """The instances of each set: those with a StatefulSet; those whose data volume outlived
    its StatefulSet (deleted by someone: the instance comes back under its name, onto its
    data); those whose certificates or configuration exist without a StatefulSet yet (an
    operator stopped between its applies: a new name would orphan them); and those created
    but not cached yet (else a quick second reconcile would create the same instances again)."""
    pending = ctx.memory.pending_instances
    by_set: dict[str, set[str]] = defaultdict(set)
    for sts in statefulsets:
        by_set[instance_set_of(sts)].add(sts["metadata"]["name"])
        pending.pop(sts["metadata"]["name"], None)
    started = [
        *ctx.cluster_objects(
            PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_ROLE: naming.ROLE_POSTGRES_DATA}
        ),
        *ctx.cluster_objects(SECRETS, {naming.LABEL_INSTANCE: None}),
        *ctx.cluster_objects(CONFIG_MAPS, {naming.LABEL_INSTANCE: None}),
    ]
    for obj in started:
        if not obj["metadata"].get("deletionTimestamp") and instance_set_of(obj):
            by_set[instance_set_of(obj)].add(instance_of(obj))
    for name, set_name in pending.items():
        by_set[set_name].add(name)
    return by_set


def _grow(ctx: Context, set_name: str, names: set[str], wanted: int) -> set[str]:
    """The set's instance names, with new ones generated up to `wanted`."""
    pending = ctx.memory.pending_instances
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


def _record_startup_instance(
    ctx: Context, primary: str | None, instances: list[str], *, stopping: bool
) -> None:
    """Remember, on shutdown (or when `stopping` for a restore), which instance must start
    first; forget once it runs again, or once it is gone for good."""
    if ctx.spec.get("shutdown") or stopping:
        if not ctx.status.get("startupInstance") and instances:
            chosen = primary or instances[0]
            sts = ctx.cached(STATEFUL_SETS, chosen)
            ctx.status["startupInstance"] = chosen
            ctx.status["startupInstanceSet"] = instance_set_of(sts) if sts else ""
        return
    startup = ctx.status.get("startupInstance")
    if startup:
        pod = ctx.cached(PODS, naming.instance_pod(startup))
        volumes = ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_INSTANCE: startup})
        gone = pod is None and not volumes and ctx.cached(STATEFUL_SETS, startup) is None
        if gone or (pod is not None and pod_ready(pod)):
            ctx.status.pop("startupInstance", None)
            ctx.status.pop("startupInstanceSet", None)


async def _apply_instance(
    ctx: Context,
    instance_set: JSON,
    instance: str,
    *,
    image: str,
    pods_left: int,
    resize_errors: list[str],
    sizing: autogrow.Sizing,
) -> None:
    owner, spec, root = ctx.owner, ctx.spec, ctx.root_ca
    extra = instance_set.get("metadata")
    now = datetime.datetime.now(datetime.UTC)
    common_name, names = certificates.instance_names(owner, instance)
    leaf = certificates.read(
        ctx.cached(SECRETS, naming.instance_certificates(instance)), "dns.crt", "dns.key"
    )
    if leaf is None or not authority.leaf_is_current(leaf, root, common_name, names, now):
        leaf = authority.issue_leaf(root, common_name, names, now)
    await ctx.apply(
        SECRETS,
        certificates.instance_secret(
            owner, instance_set["name"], instance, root, leaf, extra=extra
        ),
    )
    separate_wal = bool(instance_set.get("walVolumeClaimSpec"))
    document = patroni_config.instance_yaml(
        spec["postgresVersion"],
        separate_wal_volume=separate_wal,
        bootstrapped=ctx.bootstrapped,
        replica_methods=_replica_methods(ctx, separate_wal=separate_wal),
        bootstrap_command=(
            data_source.bootstrap_command(spec["postgresVersion"])
            if data_source.from_existing_data(ctx.status)
            else None
        ),
    )
    await ctx.apply(
        CONFIG_MAPS, instance_objects.config_map(owner, instance_set, instance, document)
    )
    adopted = _adopted_claims(ctx, instance)
    if naming.ROLE_POSTGRES_DATA not in adopted:
        claim = instance_objects.data_volume(owner, instance_set, instance)
        await _size_data_volume(ctx, claim, sizing)
        await _apply_volume(ctx, claim, resize_errors)
    if separate_wal and naming.ROLE_POSTGRES_WAL not in adopted:
        await _apply_volume(
            ctx,
            instance_objects.data_volume(owner, instance_set, instance, wal=True),
            resize_errors,
        )
    replicas = statefulset_replicas(
        instance,
        shutdown=bool(spec.get("shutdown")),
        startup_instance=str(ctx.status.get("startupInstance") or ""),
        pods_left=pods_left,
    )

    def statefulset(*, report_disk_space: bool) -> JSON:
        return instance_pod.statefulset(
            owner,
            spec,
            instance_set,
            instance,
            image=image,
            replicas=replicas,
            sidecars=ctx.environment.instance_sidecars,
            pgbackrest_image=ctx.pgbackrest_image if backups_enabled(spec) else None,
            adopted=adopted,
            report_disk_space=report_disk_space,
            exporter=_exporter(ctx),
        )

    # The disk space report came with a change of the pod template. A StatefulSet that an
    # earlier operator version rendered for this very spec keeps its template (an upgrade
    # rolls no pod by itself, DESIGN.md); it gets the report with its next template change
    # (a spec change, which rolls its pods anyway), or at once under AutoGrowVolumes.
    before = statefulset(report_disk_space=False)
    live = ctx.cached(STATEFUL_SETS, instance)
    keep = not ctx.environment.auto_grow_volumes and drift.in_sync(before, live)
    await ctx.apply(STATEFUL_SETS, before if keep else statefulset(report_disk_space=True))


def _exporter(ctx: Context) -> instance_pod.Exporter | None:
    """The exporter's additions to the pod while monitoring is on and has an image (the
    `monitoring` step reports a missing one)."""
    image = ctx.exporter_image
    if image is None:
        return None
    annotations = ctx.raw["metadata"].get("annotations") or {}
    return exporter.instance_additions(
        ctx.name, ctx.spec, annotations, image, append_queries=ctx.environment.append_custom_queries
    )


def _adopted_claims(ctx: Context, instance: str) -> dict[str, str]:
    """The instance's adopted claims by role (`pgdata`, `pgwal`): they keep their names, and
    their specs are the user's (only their labels are ours)."""
    own = {
        naming.ROLE_POSTGRES_DATA: naming.instance_data_volume(instance),
        naming.ROLE_POSTGRES_WAL: naming.instance_wal_volume(instance),
    }
    found: dict[str, str] = {}
    for claim in ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_INSTANCE: instance}):
        role = str(claim["metadata"]["labels"].get(naming.LABEL_ROLE))
        if role in own and claim["metadata"]["name"] != own[role]:
            found[role] = str(claim["metadata"]["name"])
    return found


async def _size_data_volume(ctx: Context, claim: JSON, sizing: autogrow.Sizing) -> None:
    """Give the claim the set's grown (or limited) request; its Events go once, when the
    request of the live claim changes."""
    if sizing.request is None:
        return
    claim["spec"].setdefault("resources", {}).setdefault("requests", {})["storage"] = sizing.request
    live = ctx.cached(PERSISTENT_VOLUME_CLAIMS, claim["metadata"]["name"])
    before = quantity.parse(str(live["spec"]["resources"]["requests"]["storage"])) if live else None
    if before != quantity.parse(sizing.request):
        for event in sizing.events:
            await ctx.recorder.event(ctx.raw, event.type, event.reason, event.message)


async def _apply_volume(ctx: Context, claim: JSON, resize_errors: list[str]) -> None:
    """Apply a volume claim; a refused change (a smaller size, a class that cannot expand)
    joins `resize_errors`, and the instance goes on with the volume it has."""
    try:
        await ctx.apply(PERSISTENT_VOLUME_CLAIMS, claim)
    except InvalidError as error:
        resize_errors.append(f"{claim['metadata']['name']}: {error.message}")


def _report_volumes(ctx: Context, resize_errors: list[str]) -> None:
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
        ctx.set_condition(naming.CONDITION_PV_RESIZING, "True", naming.REASON_RESIZING, message)
    else:
        ctx.clear_condition(naming.CONDITION_PV_RESIZING)
    if resize_errors:
        message = "; ".join(resize_errors)
        ctx.set_condition(
            naming.CONDITION_PV_RESIZE_ERROR, "True", naming.REASON_RESIZE_REFUSED, message
        )
    else:
        ctx.clear_condition(naming.CONDITION_PV_RESIZE_ERROR)


async def _remove_instance(ctx: Context, instance: str) -> None:
    """Delete an instance the spec no longer has room for: its StatefulSet and its objects.

    Its volumes go too, as in PGO: shrinking a set is the user asking for fewer copies.
    """
    selector: dict[str, str | None] = {naming.LABEL_INSTANCE: instance}
    for resource in (STATEFUL_SETS, CONFIG_MAPS, SECRETS, PERSISTENT_VOLUME_CLAIMS):
        for obj in ctx.cluster_objects(resource, selector):
            await ctx.delete(resource, obj)
    ctx.memory.pending_instances.pop(instance, None)


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
        entry = counts.get(instance_set_of(pod))
        if entry is None:
            continue
        entry["replicas"] += 1
        entry["readyReplicas"] += int(pod_ready(pod))
        revision = (pod["metadata"].get("labels") or {}).get("controller-revision-hash")
        entry["updatedReplicas"] += int(
            revision is not None and revision == update_revision.get(instance_of(pod))
        )
    return [counts[name] for name in sorted(counts)]


def _replica_methods(ctx: Context, *, separate_wal: bool) -> dict[str, JSON]:
    """pgBackRest's restore as Patroni's first way to create a replica, once a repository holds
    the replica-create backup (PGO's): a new replica then copies from the repository, not from
    the primary. A standby cluster fed by a repository restores from that one, whose
    backups another cluster takes (PGO's)."""
    if not backups_enabled(ctx.spec):
        return {}
    repos = (ctx.status.get("pgbackrest") or {}).get("repos") or []
    ready = standby_repo(ctx.spec) or next(
        (r["name"] for r in repos if r.get("replicaCreateBackupComplete")), None
    )
    if ready is None:
        return {}
    command = pgbackrest_config.replica_create_command(ctx.spec, ready, wal_volume=separate_wal)
    return {
        "pgbackrest": {
            "command": command,
            "keep_data": True,
            "no_leader": True,
            "no_params": True,
        }
    }
