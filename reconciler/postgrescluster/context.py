"""What a subreconciler gets: the cluster, read access to the cache, and the ways to act.

Subreconcilers read only from the cache and write only through `apply` and `delete`, which
skip what is already in place; so a reconcile of a converged cluster sends no write at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reconciler import naming
from reconciler.api import PostgresCluster
from reconciler.intent import Owner
from reconciler.pgmonitor import exporter as pgmonitor_exporter
from reconciler.pki import x509
from reconciler.postgrescluster.observed import Instances, Reader
from reconciler.runtime import conditions, drift
from reconciler.runtime.client import JSON, Client, ConflictError, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import Resource


class Recorder(Protocol):
    """Posts Events about an object."""

    async def event(
        self, obj: JSON, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """Record one Event (Normal or Warning)."""
        ...


@dataclass(frozen=True, slots=True)
class Environment:
    """What the operator was configured with that matters to a cluster."""

    images: Mapping[str, str] = field(default_factory=dict)  # POSTGRES_17 -> image, etc.
    instance_sidecars: bool = True
    auto_create_user_schema: bool = True  # the AutoCreateUserSchema feature gate
    pgbouncer_sidecars: bool = False  # the PGBouncerSidecars feature gate
    auto_grow_volumes: bool = False  # the AutoGrowVolumes feature gate
    append_custom_queries: bool = False  # the AppendCustomQueries feature gate
    # Ours: the InstanceNodeLossRecovery gate, and how long a NotReady node counts as alive.
    node_loss_recovery: bool = False
    node_loss_after: float = 300.0


@dataclass
class Memory:
    """What the controller keeps for one cluster from one reconcile to the next. It is lost
    when the operator restarts, so every field must be safe to rebuild from the cluster."""

    # Instances created but not cached yet, by name: their set (else a quick second reconcile
    # would create the same instances again).
    pending_instances: dict[str, str] = field(default_factory=dict)
    # Digest of the DCS configuration Patroni was found or made to hold.
    patroni_configuration: str = ""
    # Until when (monotonic) to look for pending restarts; 0: once, after an operator start;
    # None: not looking.
    restarts_watch_until: float | None = 0.0
    # The member last restarted for a pending restart, and when (monotonic).
    last_restart: tuple[str, float] = ("", 0.0)
    custom_tls_warned: bool = False
    # When (monotonic) the primary's archiving was last looked at (steps/archiving.py).
    archiving_observed: float = float("-inf")
    # When (monotonic) a standby leader's replay was last looked at (steps/patroni.py).
    standby_observed: float = float("-inf")
    # databaseInitSQL's back-off: (next attempt (monotonic), current delay).
    database_init_retry: tuple[float, float] | None = None
    # The restore preview last shown: (what it was computed for, when (monotonic)).
    restore_previewed: tuple[str, float] = ("", float("-inf"))
    # The switchover trigger this process carried out last: a reconcile that follows at once
    # may read a cached status that does not show it yet, and must not switch over again.
    switchover_trigger: str = ""
    # Whether this process has resumed the cluster's pgBouncers once: an operator that stopped
    # between PAUSE and RESUME must not leave them holding clients.
    pools_resumed: bool = False
    # The last Warning given, per reason, about an adopted repository claim (steps/volumes.py):
    # each is given once, not at every reconcile while the repository host waits.
    adoption_warnings: dict[str, str] = field(default_factory=dict)
    # When (monotonic) unready instances' logs were last read (steps/postgres_startup.py).
    startup_observed: float = float("-inf")
    # Instances rebuilt after their node was lost, with that node, until they run again
    # elsewhere (steps/node_loss.py; only the InstanceRecreated Event is lost on a restart).
    node_loss_rebuilt: dict[str, str] = field(default_factory=dict)


def image_key(spec: JSON) -> str:
    """The name, without `RELATED_IMAGE_`, of the variable giving the cluster's image."""
    key = f"POSTGRES_{spec['postgresVersion']}"
    if spec.get("postGISVersion"):
        key += f"_GIS_{spec['postGISVersion']}"
    return key


@dataclass
class Context:
    """One reconcile of one PostgresCluster."""

    raw: JSON
    cluster: PostgresCluster
    spec: JSON
    reader: Reader
    client: Client
    recorder: Recorder
    environment: Environment
    instances: Instances
    status: JSON = field(default_factory=dict)
    memory: Memory = field(default_factory=Memory)
    # The namespace's root certificate: set by the first step, read by those that connect.
    root: x509.Certificate | None = None

    @property
    def root_ca(self) -> x509.Certificate:
        """The namespace's root certificate (the `tls` step, which runs first, sets it)."""
        if self.root is None:
            raise RuntimeError("the root certificate is read before the tls step set it")
        return self.root

    @property
    def postgres_image(self) -> str | None:
        """`spec.image`, else `RELATED_IMAGE_POSTGRES_<v>[_GIS_<postgis>]`; None when neither."""
        if self.spec.get("image"):
            return str(self.spec["image"])
        return self.environment.images.get(image_key(self.spec))

    @property
    def pgbackrest_image(self) -> str | None:
        """`spec.backups.pgbackrest.image`, else `RELATED_IMAGE_PGBACKREST`; None when neither."""
        pgbackrest = (self.spec.get("backups") or {}).get("pgbackrest") or {}
        if pgbackrest.get("image"):
            return str(pgbackrest["image"])
        return self.environment.images.get("PGBACKREST")

    @property
    def exporter_image(self) -> str | None:
        """`spec.monitoring.pgmonitor.exporter.image`, else `RELATED_IMAGE_PGEXPORTER`; None
        when neither (or monitoring is off)."""
        exporter = pgmonitor_exporter.exporter_settings(self.spec)
        if exporter is None:
            return None
        return str(exporter.get("image") or "") or self.environment.images.get("PGEXPORTER")

    @property
    def owner(self) -> Owner:
        """The cluster as the owner of what it creates."""
        return Owner.of(self.raw)

    @property
    def namespace(self) -> str:
        """The cluster's namespace."""
        return str(self.raw["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The cluster's name."""
        return str(self.raw["metadata"]["name"])

    @property
    def generation(self) -> int:
        """The generation of the spec being reconciled."""
        return int(self.raw["metadata"].get("generation", 0))

    @property
    def bootstrapped(self) -> bool:
        """Whether Patroni has initialised the cluster (it then owns the DCS configuration)."""
        return bool((self.status.get("patroni") or {}).get("systemIdentifier"))

    def cached(self, resource: Resource, name: str) -> JSON | None:
        """An object of the cluster's namespace, from the cache."""
        return self.reader.get(resource, self.namespace, name)

    def cluster_objects(
        self, resource: Resource, labels: Mapping[str, str | None] | None = None
    ) -> list[JSON]:
        """Cached objects of this cluster (its label), optionally narrowed by more labels."""
        selector: dict[str, str | None] = {naming.LABEL_CLUSTER: self.name, **(labels or {})}
        return self.reader.list(resource, self.namespace, selector)

    async def apply(self, resource: Resource, intent: JSON) -> JSON:
        """Server-side apply `intent` unless the cached object already holds it."""
        live = self.cached(resource, intent["metadata"]["name"])
        if drift.in_sync(intent, live):
            assert live is not None
            return live
        return await self.client.apply(
            resource, drift.with_intent_hash(intent), field_manager=naming.FIELD_MANAGER
        )

    async def delete(
        self, resource: Resource, obj: JSON, *, grace_period_seconds: int | None = None
    ) -> bool:
        """Delete exactly this object (its UID) and what it owns; False if it was gone (or
        replaced: another object of that name is not the one meant)."""
        meta = obj["metadata"]
        try:
            # Background: a Job's default is still to orphan its pods.
            await self.client.delete(
                resource,
                meta["name"],
                meta.get("namespace"),
                uid=meta["uid"],
                propagation="Background",
                grace_period_seconds=grace_period_seconds,
            )
        except (NotFoundError, ConflictError):
            return False
        return True

    async def warn(self, reason: str, message: str) -> None:
        """A Warning Event on the cluster."""
        await self.recorder.event(self.raw, "Warning", reason, message)

    def set_condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set a status condition for the generation being reconciled."""
        self.status["conditions"] = conditions.set_condition(
            self.status.get("conditions") or [],
            type_,
            status,
            reason,
            message,
            observed_generation=self.generation,
        )

    def clear_condition(self, type_: str) -> None:
        """Remove a status condition."""
        self.status["conditions"] = conditions.remove_condition(
            self.status.get("conditions") or [], type_
        )


# A subreconciler: converge one part of the cluster; a Result asks to be called again later
# (something external to wait for), None when only an event can change what it sees.
Step = Callable[[Context], Awaitable[Result | None]]
