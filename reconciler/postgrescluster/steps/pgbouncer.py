"""Subreconciler: the pgBouncer connection pooler of `spec.proxy.pgBouncer`, as PGO runs it.

Objects (all `<c>-pgbouncer`): the Service, the Secret (the `_crunchypgbouncer` password, its
verifier and auth file, the frontend certificate issued by the namespace root unless
`customTLSSecret` is given), the ConfigMap, the Deployment, and a PodDisruptionBudget while
more than zero pods must stay. In PostgreSQL, once the primary is ready: the role, schema and
`get_auth` function (`reconciler.pgbouncer.postgres`), recorded in
`status.proxy.pgBouncer.postgresRevision`. `status.proxy.pgBouncer` and `ProxyAvailable` follow
the Deployment. Turning pooling off removes all of it, in PostgreSQL too. Once per operator
process, the pools are resumed, in case a predecessor stopped while they were paused.
"""

from __future__ import annotations

import base64
import datetime

import asyncpg
import structlog

from reconciler import naming
from reconciler.pgbouncer import config, objects
from reconciler.pgbouncer import postgres as pgbouncer_sql
from reconciler.pki import authority, certificates
from reconciler.postgres import connection, password
from reconciler.postgres.sql import DATABASES_QUERY
from reconciler.postgrescluster import pooling
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.rbac import APPLY, READ, Rule
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    SECRETS,
    SERVICES,
    Resource,
)

log = structlog.get_logger(__name__)

RULES = (
    Rule(
        "apps",
        ("deployments",),
        (*READ, *APPLY, "delete"),
        "pgBouncer's Deployment; it goes when pooling is turned off.",
    ),
)

_KINDS: tuple[Resource, ...] = (
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    CONFIG_MAPS,
    SECRETS,
    SERVICES,
)


async def reconcile(ctx: Context) -> None:
    """Converge pgBouncer's objects, its status, and its part of PostgreSQL."""
    bouncer = config.settings(ctx.spec)
    if bouncer is None:
        await _remove(ctx)
        return
    image = bouncer.get("image") or ctx.environment.images.get("PGBOUNCER")
    if not image:
        message = (
            "No image for pgBouncer: set spec.proxy.pgBouncer.image, "
            "or set RELATED_IMAGE_PGBOUNCER in the operator's environment"
        )
        await ctx.warn(naming.REASON_MISSING_IMAGE, message)
        ctx.set_condition(
            naming.CONDITION_PROXY_AVAILABLE, "False", naming.REASON_MISSING_IMAGE, message
        )
        return
    owner, spec = ctx.owner, ctx.spec
    if objects.node_port_misconfigured(spec):
        await ctx.warn(
            naming.REASON_MISCONFIGURED_CLUSTER_IP,
            f"NodePort cannot be set with type ClusterIP on Service "
            f'"{naming.pgbouncer(ctx.name)}": set spec.proxy.pgBouncer.service.type to '
            "NodePort or LoadBalancer, or remove the nodePort",
        )
    else:
        await ctx.apply(SERVICES, objects.service(owner, spec))
    secret = await ctx.apply(SECRETS, objects.secret(owner, spec, _secret_data(ctx)))
    await ctx.apply(CONFIG_MAPS, objects.config_map(owner, spec))
    deployment = await ctx.apply(
        DEPLOYMENTS,
        objects.deployment(owner, spec, image, sidecars=ctx.environment.pgbouncer_sidecars),
    )
    minimum = objects.disruption_minimum(bouncer)
    if minimum is None:
        await _delete_cached(ctx, POD_DISRUPTION_BUDGETS)
    else:
        await ctx.apply(POD_DISRUPTION_BUDGETS, objects.disruption_budget(owner, spec, minimum))
    _observe(ctx, deployment)
    await _resume_once(ctx)
    verifier = base64.b64decode(secret["data"][config.VERIFIER_KEY]).decode()
    await _in_postgres(ctx, pgbouncer_sql.enable_statements(verifier), enable=True)


async def _resume_once(ctx: Context) -> None:
    """RESUME the pools once per operator process: a predecessor may have stopped while they
    were paused around a switchover (`pooling.primary_moves`)."""
    if ctx.memory.pools_resumed:
        return
    held = pooling.consoles(ctx)
    if held is not None:
        await held.resume()
        ctx.memory.pools_resumed = True


def _secret_data(ctx: Context) -> dict[str, str | bytes]:
    """The role's password and verifier (kept, or made when missing), and the frontend
    certificate (kept while current) unless the user brings one."""
    live = ctx.cached(SECRETS, naming.pgbouncer(ctx.name))
    stored = {
        key: base64.b64decode(value).decode()
        for key, value in ((live or {}).get("data") or {}).items()
        if key in (config.PASSWORD_KEY, config.VERIFIER_KEY)
    }
    secret = stored.get(config.PASSWORD_KEY) or password.generate("ASCII", config.PASSWORD_LENGTH)
    verifier = stored.get(config.VERIFIER_KEY) if stored.get(config.PASSWORD_KEY) else None
    data: dict[str, str | bytes] = {
        config.PASSWORD_KEY: secret,
        config.VERIFIER_KEY: verifier or password.scram_verifier(secret),
        config.AUTH_FILE_KEY: config.auth_file(secret),
    }
    if (config.settings(ctx.spec) or {}).get("customTLSSecret"):
        return data
    now = datetime.datetime.now(datetime.UTC)
    root = ctx.root_ca
    common_name, names = certificates.pgbouncer_names(ctx.owner)
    leaf = certificates.read(live, config.FRONTEND_CERT_KEY, config.FRONTEND_KEY_KEY)
    if leaf is None or not authority.leaf_is_current(leaf, root, common_name, names, now):
        leaf = authority.issue_leaf(root, common_name, names, now)
    data[config.FRONTEND_CA_KEY] = root.certificate_pem
    data[config.FRONTEND_CERT_KEY] = leaf.certificate_pem
    data[config.FRONTEND_KEY_KEY] = leaf.key_pem
    return data


def _observe(ctx: Context, deployment: JSON | None) -> None:
    """`status.proxy.pgBouncer` replicas and `ProxyAvailable`, from the Deployment's status
    (PGO's: the condition mirrors the Deployment's `Available`)."""
    observed = (deployment or {}).get("status") or {}
    counts = {key: observed[key] for key in ("replicas", "readyReplicas") if observed.get(key)}
    revision = _proxy_status(ctx).get("postgresRevision")
    ctx.status["proxy"] = {
        "pgBouncer": {**counts, **({"postgresRevision": revision} if revision else {})}
    }
    available = next(
        (c for c in observed.get("conditions") or [] if c.get("type") == "Available"), None
    )
    if available is None:
        ctx.clear_condition(naming.CONDITION_PROXY_AVAILABLE)
        return
    ctx.set_condition(
        naming.CONDITION_PROXY_AVAILABLE,
        str(available.get("status")),
        str(available.get("reason") or "Unknown"),
        str(available.get("message") or ""),
    )


def _proxy_status(ctx: Context) -> JSON:
    return dict((ctx.status.get("proxy") or {}).get("pgBouncer") or {})


async def _delete_cached(ctx: Context, resource: Resource) -> None:
    live = ctx.cached(resource, naming.pgbouncer(ctx.name))
    if live is not None:
        await ctx.delete(resource, live)


async def _remove(ctx: Context) -> None:
    """Pooling is off: its objects go, and, if it ever ran here, its role and schemas."""
    for resource in _KINDS:
        await _delete_cached(ctx, resource)
    ctx.clear_condition(naming.CONDITION_PROXY_AVAILABLE)
    revision = _proxy_status(ctx).get("postgresRevision")
    if not revision:
        ctx.status.pop("proxy", None)
        return
    # No pods any more; the revision stays until the removal SQL has run.
    ctx.status["proxy"] = {"pgBouncer": {"postgresRevision": revision}}
    await _in_postgres(ctx, pgbouncer_sql.disable_statements(), enable=False)


async def _in_postgres(ctx: Context, statements: list[str], *, enable: bool) -> None:
    """Run `statements` in every database unless their revision is recorded already; then the
    role's removal when disabling. Waits for a ready primary; PostgreSQL errors become Warnings
    and are retried on the next reconcile."""
    revision = pgbouncer_sql.revision([*statements, str(enable)])
    current = _proxy_status(ctx)
    if current.get("postgresRevision") == revision:
        return
    if ctx.spec.get("shutdown") or ctx.instances.ready_primary is None:
        return
    if ctx.spec.get("customTLSSecret"):
        return  # the operator cannot log in; `postgres_users` says so once
    host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
    port = int(ctx.spec["port"])
    try:
        async with connection.superuser(host, port, ctx.root_ca) as db:
            databases = [row["datname"] for row in await db.fetch(DATABASES_QUERY)]
        for database in databases:
            async with connection.superuser(host, port, ctx.root_ca, database) as db:
                # One transaction: no session sees the schema before its privileges are set.
                await db.execute(";\n".join(["BEGIN", *statements, "COMMIT"]))
        if not enable:
            async with connection.superuser(host, port, ctx.root_ca) as db:
                await db.execute(pgbouncer_sql.drop_role())
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
        log.info("primary not reachable yet; pgBouncer's SQL later", error=repr(error))
        return
    except asyncpg.PostgresError as error:
        what = "set up" if enable else "remove"
        message = f"Could not {what} pgBouncer's role and schema in PostgreSQL: {error}"
        log.warning("pgBouncer SQL failed", error=str(error))
        await ctx.warn("PGBouncerSQLFailed", message)
        return
    if enable:
        ctx.status["proxy"] = {"pgBouncer": {**current, "postgresRevision": revision}}
    else:
        ctx.status.pop("proxy", None)
