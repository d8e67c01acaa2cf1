"""Subreconciler: a Secret `<cluster>-pguser-<user>` per user of the spec (with the
`pgbouncer-*` keys while pooling is on); those of removed users go."""

from __future__ import annotations

from reconciler import naming
from reconciler.pgbouncer import config as pgbouncer
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.user_secrets import effective_users, user_secret
from reconciler.runtime.resources import SECRETS


async def reconcile(ctx: Context) -> None:
    """Apply a Secret per user; delete the Secrets of users no longer in the spec."""
    users = effective_users(ctx.name, ctx.spec.get("users"))
    bouncer = pgbouncer.settings(ctx.spec)
    bouncer_port = None if bouncer is None else int(bouncer.get("port", 5432))
    for user in users:
        name = naming.postgres_user_secret(ctx.name, user["name"])
        existing = (ctx.cached(SECRETS, name) or {}).get("data")
        await ctx.apply(
            SECRETS,
            user_secret(
                ctx.owner,
                user,
                port=ctx.spec["port"],
                existing=existing,
                pgbouncer_port=bouncer_port,
            ),
        )
    wanted = {str(user["name"]) for user in users}
    for secret in ctx.cluster_objects(SECRETS, {naming.LABEL_POSTGRES_USER: None}):
        if secret["metadata"]["labels"][naming.LABEL_POSTGRES_USER] not in wanted:
            await ctx.delete(SECRETS, secret)
