"""Subreconciler: the namespace's root certificate and the cluster-wide leaf certificates.

The root is shared by every cluster of the namespace, each adding a (non-controller) owner
reference, so it outlives no cluster that uses it. `customTLSSecret` and
`customReplicationTLSSecret` replace the generated leaves; then nothing is generated for them.
"""

from __future__ import annotations

import datetime

from reconciler import naming
from reconciler.intent import Owner, owner_reference
from reconciler.pki import authority, certificates, x509
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import SECRETS


async def reconcile(ctx: Context) -> None:
    """Ensure the root, the cluster certificate and the replication certificate."""
    now = datetime.datetime.now(datetime.UTC)
    root = await _root(ctx, now)
    ctx.root = root
    owner = ctx.owner
    if not ctx.spec.get("customTLSSecret"):
        common_name, names = certificates.cluster_names(owner)
        leaf = _current_leaf(
            ctx,
            naming.cluster_certificate_secret(owner.name),
            root=root,
            common_name=common_name,
            names=names,
            now=now,
        )
        await ctx.apply(SECRETS, certificates.cluster_secret(owner, root, leaf))
    if not ctx.spec.get("customReplicationTLSSecret"):
        common_name, names = certificates.replication_names()
        name = naming.replication_certificate_secret(owner.name)
        leaf = _current_leaf(ctx, name, root=root, common_name=common_name, names=names, now=now)
        await ctx.apply(SECRETS, certificates.replication_secret(owner, root, leaf))


async def _root(ctx: Context, now: datetime.datetime) -> x509.Certificate:
    secret = ctx.cached(SECRETS, naming.ROOT_CA_SECRET)
    root = certificates.read(secret, "root.crt", "root.key")
    if root is None or not authority.root_is_usable(root, now):
        root = authority.new_root(now)
    owners = root_owners(secret, ctx.owner)
    await ctx.apply(SECRETS, certificates.root_secret(ctx.namespace, root, owners))
    return root


def root_owners(secret: JSON | None, owner: Owner) -> list[JSON]:
    """The root Secret's owner references with this cluster's among them: every cluster of the
    namespace that uses the root keeps a plain reference (no controller, as PGO writes it), so
    the root goes with the last of them."""
    others = [
        ref
        for ref in ((secret or {}).get("metadata") or {}).get("ownerReferences") or []
        if ref.get("uid") != owner.uid
    ]
    reference = owner_reference(owner)
    mine = {key: reference[key] for key in ("apiVersion", "kind", "name", "uid")}
    return sorted([*others, mine], key=lambda ref: str(ref.get("uid")))


def _current_leaf(
    ctx: Context,
    secret_name: str,
    *,
    root: x509.Certificate,
    common_name: str,
    names: list[str],
    now: datetime.datetime,
) -> x509.Certificate:
    """The leaf in the Secret if it may stay, else a new one."""
    leaf = certificates.read(ctx.cached(SECRETS, secret_name), "tls.crt", "tls.key")
    if leaf is not None and authority.leaf_is_current(leaf, root, common_name, names, now):
        return leaf
    return authority.issue_leaf(root, common_name, names, now)
