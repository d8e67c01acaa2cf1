"""Subreconciler: pgBackRest's configuration, certificates, repository host and repositories,
and the stanza, as PGO sets them up (`spec.backups.pgbackrest`).

Volume repositories live on claims mounted by a dedicated repository host (`<c>-repo-host`),
which reaches the instances' pgBackRest TLS servers (and they it) with the cluster's one client
certificate. Once the primary accepts writes and the repository host is ready, the stanza is
created by running pgBackRest in the primary's `database` container through `pods/exec`, as
PGO does; `status.pgbackrest.repos` records it. Backup Jobs come after (`steps/backups.py`).

Without `spec.backups`, nothing of pgBackRest exists; removing the section from a cluster that
has a repository host deletes nothing until the `authorizeBackupRemoval` annotation allows it
(the controller pauses the cluster meanwhile, as PGO does).
"""

from __future__ import annotations

import datetime

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.pgbackrest import config, pods
from reconciler.pgbackrest.postgres import backups_enabled
from reconciler.pki import authority, certificates, x509
from reconciler.postgrescluster import adoption
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.instance_pod import default_topology_spread
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, ApiError
from reconciler.runtime.controller import Result
from reconciler.runtime.rbac import APPLY, READ, Rule
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    CRON_JOBS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    STATEFUL_SETS,
    Resource,
)

# Granted to the backup Jobs (`<c>-pgbackrest`): find the repository host, run pgBackRest in it.
JOB_RULES = (
    Rule("", ("pods",), ("list",), "Granted to backup Jobs (<c>-pgbackrest): find the repo host."),
    # PGO grants `create` (its clients speak SPDY, a POST); a WebSocket's handshake is a GET,
    # which the API server authorizes as `get` and, since Kubernetes 1.35, `create` as well.
    Rule(
        "",
        ("pods/exec",),
        ("create", "get"),
        "Granted to backup Jobs (<c>-pgbackrest); the operator runs stanza-create in the primary.",
    ),
)
RULES = (
    Rule(
        "batch",
        ("jobs", "cronjobs"),
        (*READ, *APPLY, "delete"),
        "Backup Jobs and their schedules; an outdated Job or a removed schedule is deleted.",
    ),
    *JOB_RULES,
)
RETRY = Result(requeue_after=10.0)
_CONTAINER_KIND = {"apiVersion": "apps/v1", "kind": "StatefulSet"}
# What the removal of `spec.backups` deletes (everything pgBackRest of the cluster).
_LABELLED: tuple[Resource, ...] = (
    CRON_JOBS,
    JOBS,
    STATEFUL_SETS,
    PERSISTENT_VOLUME_CLAIMS,
    CONFIG_MAPS,
    SECRETS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
)
_PGBACKREST_CONDITIONS = (
    naming.CONDITION_PGBACKREST_REPO_HOST_READY,
    naming.CONDITION_PGBACKREST_REPLICA_REPO_READY,
    naming.CONDITION_PGBACKREST_REPLICA_CREATE,
    naming.CONDITION_PGBACKREST_MANUAL_BACKUP,
)


def removal_pending(spec: JSON, annotations: dict[str, str], repo_host: JSON | None) -> bool:
    """Whether `spec.backups` was removed from a cluster whose repository host still exists,
    without the annotation that authorizes deleting it (PGO then pauses the cluster)."""
    authorized = annotations.get(naming.ANNOTATION_AUTHORIZE_BACKUP_REMOVAL) == "true"
    return not backups_enabled(spec) and repo_host is not None and not authorized


REMOVAL_MESSAGE = (
    "Reconciliation is paused: please fill in spec.backups or add the "
    f"{naming.ANNOTATION_AUTHORIZE_BACKUP_REMOVAL} annotation to authorize backup removal."
)


async def reconcile(ctx: Context) -> Result | None:
    """Converge pgBackRest's objects and the stanza; `status.pgbackrest` reports them."""
    if not backups_enabled(ctx.spec):
        await _remove(ctx)
        return None
    image = ctx.pgbackrest_image
    if image is None:
        return None  # the controller reports the missing image
    status: JSON = ctx.status.setdefault("pgbackrest", {})
    owner = ctx.owner
    extra = ctx.spec["backups"]["pgbackrest"].get("metadata")
    for obj in rbac_objects(owner, extra):
        await ctx.apply(_resource(obj), obj)
    repo_host_ready = False
    claims = _adopted_repo_claims(ctx)
    if pods.volume_repos(ctx.spec):
        waiting = _awaiting_adopted_repo(ctx)
        if waiting is None:
            host = await ctx.apply(STATEFUL_SETS, repo_host(owner, ctx.spec, image, extra, claims))
            repo_host_ready = int((host.get("status") or {}).get("readyReplicas", 0)) > 0
        status["repoHost"] = {**_CONTAINER_KIND, "ready": repo_host_ready}
        ready, reason, message = (
            ("True", "RepoHostReady", "pgBackRest dedicated repository host is ready")
            if repo_host_ready
            else (
                "False",
                "RepoHostNotReady",
                waiting or "pgBackRest dedicated repository host is not ready",
            )
        )
        ctx.set_condition(naming.CONDITION_PGBACKREST_REPO_HOST_READY, ready, reason, message)
    else:
        status.pop("repoHost", None)
        ctx.clear_condition(naming.CONDITION_PGBACKREST_REPO_HOST_READY)
    await ctx.apply(SECRETS, _secret(ctx, extra, repo_host=bool(pods.volume_repos(ctx.spec))))
    status["repos"] = await _repos(ctx, status.get("repos") or [], extra, claims)
    await ctx.apply(CONFIG_MAPS, config_map(ctx, extra))
    return await _stanza(ctx, status, ready=repo_host_ready or not pods.volume_repos(ctx.spec))


def _resource(obj: JSON) -> Resource:
    return {"ServiceAccount": SERVICE_ACCOUNTS, "Role": ROLES, "RoleBinding": ROLE_BINDINGS}[
        obj["kind"]
    ]


def rbac_objects(owner: Owner, extra: JSON | None) -> list[JSON]:
    """The repository host's ServiceAccount, and the backup Jobs' ServiceAccount, Role and
    RoleBinding (`<c>-pgbackrest`: list pods, exec into them)."""
    labels = naming.pgbackrest_labels(owner.name)
    name = naming.pgbackrest_rbac(owner.name)
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(owner, naming.repo_host_rbac(owner.name), labels, extra=extra),
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(owner, name, labels, extra=extra),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(owner, name, labels, extra=extra),
            "rules": [rule.policy() for rule in JOB_RULES],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(owner, name, labels, extra=extra),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name}],
        },
    ]


def repo_host(
    owner: Owner, spec: JSON, image: str, extra: JSON | None, claims: dict[str, str]
) -> JSON:
    """The dedicated repository host: one pod, `<c>-repo-host-0`, named under `<c>-pods`;
    `claims` names the adopted claims of repositories (else `<c>-<repo>`)."""
    selector = naming.repo_host_labels(owner.name)
    labels = {**selector, naming.LABEL_DATA: naming.DATA_PGBACKREST}
    annotations = {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_PGBACKREST}
    meta = metadata(owner, naming.repo_host(owner.name), labels, annotations, extra=extra)
    pod = pods.repo_host_pod(owner.name, spec, image, claims)
    host = spec["backups"]["pgbackrest"].get("repoHost") or {}
    topology = list(host.get("topologySpreadConstraints") or [])
    if not spec.get("disableDefaultPodScheduling"):
        topology += default_topology_spread(owner)
    if topology:
        pod["topologySpreadConstraints"] = topology
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "serviceName": naming.cluster_pod_service(owner.name),
            "replicas": 0 if spec.get("shutdown") else 1,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": meta["labels"],
                    "annotations": meta.get("annotations") or {},
                },
                "spec": pod,
            },
        },
    }


def _secret(ctx: Context, extra: JSON | None, *, repo_host: bool) -> JSON:
    """`<c>-pgbackrest` with the certificates it holds kept while they are current."""
    now = datetime.datetime.now(datetime.UTC)
    owner, root = ctx.owner, ctx.root_ca
    live = ctx.cached(SECRETS, naming.pgbackrest_secret(owner.name))

    def current(key: str, names: tuple[str, list[str]]) -> x509.Certificate:
        leaf = certificates.read(live, f"{key}.crt", f"{key}.key")
        common_name, dns = names
        if leaf is not None and authority.leaf_is_current(leaf, root, common_name, dns, now):
            return leaf
        return authority.issue_leaf(root, common_name, dns, now)

    client = current("pgbackrest-client", certificates.pgbackrest_client_names(owner))
    host = (
        current("pgbackrest-repo-host", certificates.repo_host_names(owner)) if repo_host else None
    )
    return certificates.pgbackrest_secret(owner, root, client, host, extra=extra)


def repo_volume(owner: Owner, repo: JSON, extra: JSON | None) -> JSON:
    """The claim of one volume repository."""
    labels = naming.repo_volume_labels(owner.name, repo["name"])
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(
            owner, naming.repo_volume(owner.name, repo["name"]), labels, extra=extra
        ),
        "spec": repo["volume"]["volumeClaimSpec"],
    }


def _adopted_repo_claims(ctx: Context) -> dict[str, str]:
    """The claims adopted as repositories' volumes (`dataSource.volumes.pgBackRestVolume`), by
    repository: they keep their names."""
    found: dict[str, str] = {}
    for claim in ctx.cluster_objects(
        PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_PGBACKREST_VOLUME: ""}
    ):
        repo = str(claim["metadata"]["labels"].get(naming.LABEL_PGBACKREST_REPO))
        if claim["metadata"]["name"] != naming.repo_volume(ctx.name, repo):
            found[repo] = str(claim["metadata"]["name"])
    return found


def _awaiting_adopted_repo(ctx: Context) -> str | None:
    """Why the repository host waits for an adopted repository claim; None when it need not."""
    volume = adoption.requested(ctx.spec).get(adoption.REPO)
    if volume is None:
        return None
    name = str(volume["pvcName"])
    job = naming.move_repo_directory_job(ctx.name)
    claim = ctx.cached(PERSISTENT_VOLUME_CLAIMS, name)
    if adoption.repo_claim_in_place(ctx.spec, claim, ctx.cached(JOBS, job)):
        return None
    if claim is None:
        return f'waiting to adopt PersistentVolumeClaim "{name}" (see the Events)'
    return f"waiting for Job {job} to move the adopted repository into place (see the Events)"


async def _repos(
    ctx: Context, previous: list[JSON], extra: JSON | None, adopted: dict[str, str]
) -> list[JSON]:
    """Apply the volume repositories' claims (deleting those of removed repositories; an
    adopted claim is the user's spec) and build `status.pgbackrest.repos`: a repository whose
    volume changed starts over."""
    by_name = {r["name"]: r for r in previous}
    first = ctx.spec["backups"]["pgbackrest"]["repos"][0]["name"]
    to_adopt = first if adoption.REPO in adoption.requested(ctx.spec) else None
    repos: list[JSON] = []
    wanted = {r["name"] for r in ctx.spec["backups"]["pgbackrest"]["repos"]}
    for existing in ctx.cluster_objects(
        PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_PGBACKREST_VOLUME: ""}
    ):
        if existing["metadata"]["labels"].get(naming.LABEL_PGBACKREST_REPO) not in wanted:
            await ctx.delete(PERSISTENT_VOLUME_CLAIMS, existing)
    for repo in ctx.spec["backups"]["pgbackrest"]["repos"]:
        entry: JSON = {
            "name": repo["name"],
            "stanzaCreated": bool(by_name.get(repo["name"], {}).get("stanzaCreated")),
        }
        if by_name.get(repo["name"], {}).get("replicaCreateBackupComplete"):
            entry["replicaCreateBackupComplete"] = True
        if repo.get("volume"):
            claim = await _repo_claim(ctx, repo, extra, adopted, to_adopt)
            if claim is None:
                repos.append(entry)
                continue
            entry["bound"] = (claim.get("status") or {}).get("phase") == "Bound"
            volume = (claim.get("spec") or {}).get("volumeName") or ""
            old = by_name.get(repo["name"], {}).get("volume")
            if old and volume and old != volume:
                entry["stanzaCreated"] = False
                entry.pop("replicaCreateBackupComplete", None)
            if volume:
                entry["volume"] = volume
        else:
            hashes = config.repo_options_hashes(ctx.spec)
            if repo["name"] in hashes:
                entry["repoOptionsHash"] = hashes[repo["name"]]
        repos.append(entry)
    return sorted(repos, key=lambda r: str(r["name"]))


async def _repo_claim(
    ctx: Context, repo: JSON, extra: JSON | None, adopted: dict[str, str], to_adopt: str | None
) -> JSON | None:
    """The claim of a volume repository: applied, or the adopted one as it is (the user's
    spec); None while the claim to adopt is not adopted yet, or when the API refused it."""
    name = repo["name"]
    if name in adopted:
        return ctx.cached(PERSISTENT_VOLUME_CLAIMS, adopted[name]) or {}
    if name == to_adopt:
        return None
    try:
        return await ctx.apply(PERSISTENT_VOLUME_CLAIMS, repo_volume(ctx.owner, repo, extra))
    except ApiError as error:
        await ctx.warn("PersistentVolumeError", f"repository {name}: {error}")
        return None


def config_map(ctx: Context, extra: JSON | None) -> JSON:
    """`<c>-pgbackrest-config`: the instances' and the repository host's configuration."""
    owner, spec = ctx.owner, ctx.spec
    host = naming.repo_host(owner.name) if pods.volume_repos(spec) else None
    instances = sorted(s["metadata"]["name"] for s in ctx.instances.statefulsets)
    data = {
        "pgbackrest_instance.conf": config.instance_conf(owner.name, owner.namespace, spec, host),
        "pgbackrest-server.conf": config.server_conf(owner.uid),
        "config-hash": config.config_hash(spec),
    }
    if host is not None:
        data["pgbackrest_repo.conf"] = config.repo_conf(
            owner.name, owner.namespace, spec, instances
        )
    claim = config.cloud_log_claim(ctx.raw)
    log_path = config.cloud_log_path(claim) if claim else ""
    if cloud := config.cloud_conf(owner.name, owner.namespace, spec, instances, log_path):
        data["pgbackrest_cloud.conf"] = cloud
    labels = {**naming.pgbackrest_labels(owner.name), naming.LABEL_PGBACKREST_CONFIG: ""}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, naming.pgbackrest_config(owner.name), labels, extra=extra),
        "data": data,
    }


async def _stanza(ctx: Context, status: JSON, *, ready: bool) -> Result | None:
    """Create the stanza once the primary is ready and the repositories reachable."""
    repos: list[JSON] = status["repos"]
    result: Result | None = None
    # The primary of a standby cluster is in recovery: pgBackRest needs one that is not,
    # and the stanza is the other cluster's to create (PGO's).
    primary = ctx.instances.writable_primary
    pending = any(not r["stanzaCreated"] for r in repos)
    if pending and ready and primary is not None:
        argv = config.stanza_create_argv(ctx.spec, config.config_hash(ctx.spec))
        name = primary["metadata"]["name"]
        try:
            done = await podexec.run(
                ctx.client, ctx.namespace, name, naming.CONTAINER_DATABASE, argv, timeout=300
            )
        except (ApiError, podexec.ExecError, ConnectionError, TimeoutError) as error:
            done = podexec.Completed(-1, b"", str(error).encode())
        errors = done.stderr.decode(errors="replace").strip()
        if done.exit_code == 0:
            for repo in repos:
                repo["stanzaCreated"] = True
            await ctx.recorder.event(
                ctx.raw,
                "Normal",
                "StanzasCreated",
                "pgBackRest stanza creation completed successfully",
            )
        else:
            # A configuration not mounted yet is expected for a while; anything else is news.
            if not any(
                m in errors for m in (config.HASH_MISMATCH_MESSAGE, config.STALE_REPO_MESSAGE)
            ):
                await ctx.warn(
                    "UnableToCreateStanzas", f"pgbackrest stanza-create in {name}: {errors}"
                )
            result = RETRY
    # Otherwise the repository host's readiness or the primary's role comes as an event.
    replica_repo = ctx.spec["backups"]["pgbackrest"]["repos"][0]["name"]
    first = next((r for r in repos if r["name"] == replica_repo), None)
    if first is None:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_REPO_READY,
            "Unknown",
            "RepoStatusMissing",
            "Status is missing for the replica creation repo",
        )
    elif first["stanzaCreated"]:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_REPO_READY,
            "True",
            "StanzaCreated",
            "pgBackRest replica create repo is ready for backups",
        )
    else:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_REPO_READY,
            "False",
            "StanzaNotCreated",
            "pgBackRest replica create repo is not ready for backups",
        )
    return result


async def _remove(ctx: Context) -> None:
    """Backups are off (and their removal authorized, else the controller paused): delete
    every pgBackRest object of the cluster, as PGO does; cloud repositories keep their data."""
    for resource in _LABELLED:
        for obj in ctx.cluster_objects(resource, {naming.LABEL_PGBACKREST: None}):
            await ctx.delete(resource, obj)
    if ctx.status.get("pgbackrest"):
        ctx.status["pgbackrest"] = {}
    for condition in _PGBACKREST_CONDITIONS:
        ctx.clear_condition(condition)
