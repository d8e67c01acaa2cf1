"""`spec.backups`: pgBackRest repositories, schedules, manual backups, restores and snapshots."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from reconciler.api.base import (
    ATOMIC,
    PRESERVE_UNKNOWN_FIELDS,
    ApiModel,
    Rule,
    crd_default,
    list_map,
    validations,
)
from reconciler.api.kubernetes import (
    Affinity,
    ResourceRequirements,
    Toleration,
    TopologySpreadConstraint,
    VolumeClaimSpec,
    VolumeProjection,
)
from reconciler.api.v1beta1.shared import ContainerResources, Int32, Metadata, RepoName

CronSchedule = Annotated[str, Field(min_length=6)]


class RepoVolume(ApiModel):
    """A repository on a PersistentVolumeClaim, served by the dedicated repository host."""

    volume_claim_spec: VolumeClaimSpec
    """The PersistentVolumeClaim spec of the repository volume."""


class RepoS3(ApiModel):
    """A repository in an S3-compatible bucket."""

    bucket: str
    """The bucket name."""
    endpoint: str
    """The S3 endpoint, e.g. `s3.amazonaws.com`."""
    region: str
    """The region of the bucket."""


class RepoGCS(ApiModel):
    """A repository in a Google Cloud Storage bucket."""

    bucket: str
    """The bucket name."""


class RepoAzure(ApiModel):
    """A repository in an Azure Blob Storage container."""

    container: str
    """The name of the blob container."""


class BackupSchedules(ApiModel):
    """Cron schedules (in the format of Kubernetes CronJobs) of the automatic backups."""

    full: CronSchedule | None = None
    """When to take full backups."""
    differential: CronSchedule | None = None
    """When to take differential backups (changes since the last full backup)."""
    incremental: CronSchedule | None = None
    """When to take incremental backups (changes since the last backup of any type)."""


class PGBackRestRepo(ApiModel):
    """One pgBackRest repository. It stores its backups in exactly one of a volume, S3, GCS
    or Azure."""

    name: RepoName
    """The repository name, `repo1` to `repo4`."""
    schedules: BackupSchedules | None = None
    """Automatic backups into this repository."""
    volume: RepoVolume | None = None
    """Store backups on a PersistentVolumeClaim."""
    s3: RepoS3 | None = None
    """Store backups in S3."""
    gcs: RepoGCS | None = None
    """Store backups in Google Cloud Storage."""
    azure: RepoAzure | None = None
    """Store backups in Azure Blob Storage."""


class RepoHost(ApiModel):
    """The pod that serves volume repositories to the instances."""

    affinity: Affinity | None = None
    """Scheduling constraints of the repository host pod."""
    priority_class_name: str | None = None
    """The PriorityClass of the repository host pod."""
    resources: ResourceRequirements | None = None
    """Compute resources of the pgBackRest container of the repository host."""
    tolerations: list[Toleration] | None = None
    """Taints the repository host pod tolerates."""
    topology_spread_constraints: list[TopologySpreadConstraint] | None = None
    """How the repository host pod spreads over failure domains."""
    ssh_config_map: dict[str, object] | None = Field(
        None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS
    )
    """Deprecated and ignored: repositories are served over TLS, not SSH."""
    ssh_secret: dict[str, object] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """Deprecated and ignored: repositories are served over TLS, not SSH."""


class ManualBackup(ApiModel):
    """A one-off backup, taken whenever the annotation
    `postgres-operator.crunchydata.com/pgbackrest-backup` changes."""

    repo_name: RepoName
    """The repository to back up into."""
    options: list[str] | None = Field(None, json_schema_extra=ATOMIC)
    """Command-line options of `pgbackrest backup`, e.g. `--type=full`."""


class JobSettings(ApiModel):
    """Settings of the pods that run pgBackRest commands (backups, restores)."""

    resources: ResourceRequirements | None = None
    """Compute resources of the job's container."""
    priority_class_name: str | None = None
    """The PriorityClass of the job's pod."""
    affinity: Affinity | None = None
    """Scheduling constraints of the job's pod."""
    tolerations: list[Toleration] | None = None
    """Taints the job's pod tolerates."""


class BackupJobs(JobSettings):
    """Settings of the backup Jobs."""

    ttl_seconds_after_finished: Int32 | None = Field(None, ge=60)
    """How long a finished backup Job is kept before Kubernetes deletes it."""


class PostgresClusterDataSource(JobSettings):
    """Where to restore data from: a pgBackRest repository of a PostgresCluster."""

    repo_name: RepoName
    """The repository of the source cluster to restore from."""
    cluster_name: str | None = None
    """The source cluster; defaults to this cluster (an in-place restore)."""
    cluster_namespace: str | None = None
    """The namespace of the source cluster; defaults to this cluster's namespace."""
    options: list[str] | None = Field(None, json_schema_extra=ATOMIC)
    """Command-line options of `pgbackrest restore`, e.g. `--type=time` and `--target=...`."""


class PGBackRestRestore(PostgresClusterDataSource):
    """An in-place restore, run whenever the annotation
    `postgres-operator.crunchydata.com/pgbackrest-restore` changes while it is enabled."""

    enabled: bool = Field(json_schema_extra=crd_default(False))
    """Whether the restore runs when the annotation changes."""


class PGBackRestSidecars(ApiModel):
    """Settings of the pgBackRest sidecars in instance pods."""

    pgbackrest: ContainerResources | None = None
    """The pgBackRest server container."""
    pgbackrest_config: ContainerResources | None = None
    """The container that reloads pgBackRest when its configuration changes."""


class PGBackRestArchive(ApiModel):
    """pgBackRest: WAL archiving, backups and restores."""

    metadata: Metadata | None = None
    """Labels and annotations of the pgBackRest objects."""
    configuration: list[VolumeProjection] | None = None
    """Extra configuration files, projected into `/etc/pgbackrest/conf.d` (e.g. cloud
    credentials)."""
    global_: dict[str, str] | None = Field(None, alias="global")
    """Options added to the `[global]` section of the pgBackRest configuration."""
    image: str | None = None
    """The pgBackRest image; defaults to the operator's `RELATED_IMAGE_PGBACKREST`."""
    jobs: BackupJobs | None = None
    """Settings of the backup Jobs."""
    repos: Annotated[list[PGBackRestRepo], Field(min_length=1)] = Field(
        json_schema_extra=list_map("name")
    )
    """The repositories; the first one seeds new replicas."""
    repo_host: RepoHost | None = None
    """The repository host, created when a volume repository exists."""
    manual: ManualBackup | None = None
    """A one-off backup."""
    restore: PGBackRestRestore | None = None
    """An in-place restore."""
    sidecars: PGBackRestSidecars | None = None
    """Settings of the pgBackRest sidecars."""


class VolumeSnapshots(ApiModel):
    """Volume snapshots of the data volume (feature gate `VolumeSnapshots`)."""

    volume_snapshot_class_name: Annotated[str, Field(min_length=1)]
    """The VolumeSnapshotClass to take snapshots with."""


class Backups(ApiModel):
    """How the cluster is backed up. Empty means no backups."""

    pgbackrest: PGBackRestArchive | None = None
    """pgBackRest settings."""
    snapshots: VolumeSnapshots | None = None
    """Volume snapshots of the data volume."""


class PGBackRestDataSource(ApiModel):
    """Bootstrap from a cloud repository that no PostgresCluster here manages."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                rule="!has(self.repo.volume)",
                message="Only S3, GCS or Azure repos can be used as a pgBackRest data source.",
                fieldPath=".repo",
            )
        )
    )

    configuration: list[VolumeProjection] | None = None
    """Extra pgBackRest configuration files (e.g. credentials of the repository)."""
    global_: dict[str, str] | None = Field(None, alias="global")
    """Options added to the `[global]` section of the restore's configuration."""
    repo: PGBackRestRepo
    """The repository to restore from: S3, GCS or Azure."""
    stanza: str = Field(json_schema_extra=crd_default("db"))
    """The pgBackRest stanza of the backups."""
    options: list[str] | None = Field(None, json_schema_extra=ATOMIC)
    """Command-line options of `pgbackrest restore`."""
    resources: ResourceRequirements | None = None
    """Compute resources of the restore Job."""
    affinity: Affinity | None = None
    """Scheduling constraints of the restore Job."""
    priority_class_name: str | None = None
    """The PriorityClass of the restore Job."""
    tolerations: list[Toleration] | None = None
    """Taints the restore Job tolerates."""


class DataSourceVolume(ApiModel):
    """An existing PersistentVolumeClaim to adopt."""

    pvc_name: str
    """The name of the PersistentVolumeClaim."""
    directory: str | None = None
    """The directory inside the volume that holds the data; its content is moved into place."""


class DataSourceVolumes(ApiModel):
    """Existing volumes (e.g. from a PGO v4 cluster) that become this cluster's volumes."""

    pg_data_volume: DataSourceVolume | None = None
    """The PostgreSQL data volume."""
    pg_wal_volume: DataSourceVolume | None = Field(None, alias="pgWALVolume")
    """The WAL volume."""
    pg_back_rest_volume: DataSourceVolume | None = Field(None, alias="pgBackRestVolume")
    """The pgBackRest repository volume."""


class DataSource(ApiModel):
    """Where the data of a new cluster comes from."""

    postgres_cluster: PostgresClusterDataSource | None = None
    """A pgBackRest repository of a PostgresCluster; wins over `pgbackrest`."""
    pgbackrest: PGBackRestDataSource | None = None
    """A cloud pgBackRest repository."""
    volumes: DataSourceVolumes | None = None
    """Existing volumes to adopt."""
