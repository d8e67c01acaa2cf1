"""The names, labels and annotations PGO v5 gives its objects; kept identical for drop-in use.

Everything a user or a tool may select on (Secrets, Services, labels) is spelled here once.
"""

from __future__ import annotations

import secrets

PREFIX = "postgres-operator.crunchydata.com/"

# Labels
LABEL_CLUSTER = PREFIX + "cluster"
LABEL_INSTANCE = PREFIX + "instance"
LABEL_INSTANCE_SET = PREFIX + "instance-set"
LABEL_PATRONI = PREFIX + "patroni"
LABEL_ROLE = PREFIX + "role"
LABEL_CLUSTER_CERTIFICATE = PREFIX + "cluster-certificate"
LABEL_DATA = PREFIX + "data"
LABEL_POSTGRES_USER = PREFIX + "pguser"
LABEL_PGBACKREST = PREFIX + "pgbackrest"
LABEL_PGBACKREST_BACKUP = PREFIX + "pgbackrest-backup"
LABEL_PGBACKREST_CONFIG = PREFIX + "pgbackrest-config"
LABEL_PGBACKREST_CRONJOB = PREFIX + "pgbackrest-cronjob"
LABEL_PGBACKREST_DEDICATED = PREFIX + "pgbackrest-dedicated"
LABEL_PGBACKREST_REPO = PREFIX + "pgbackrest-repo"
LABEL_PGBACKREST_VOLUME = PREFIX + "pgbackrest-volume"
LABEL_PGBACKREST_RESTORE = PREFIX + "pgbackrest-restore"
LABEL_PGBACKREST_RESTORE_CONFIG = PREFIX + "pgbackrest-restore-config"
LABEL_STARTUP_INSTANCE = PREFIX + "startup-instance"
LABEL_MOVE_JOB = PREFIX + "move-job"
LABEL_MOVE_PGDATA_DIR = PREFIX + "move-pgdata-dir"
LABEL_MOVE_PGWAL_DIR = PREFIX + "move-pgwal-dir"
LABEL_MOVE_PGBACKREST_REPO_DIR = PREFIX + "move-pgbackrest-repo-dir"
# On pods running the exporter, for Prometheus' discovery as pgMonitor configures it.
LABEL_PGMONITOR_DISCOVERY = PREFIX + "crunchy-postgres-exporter"

# Labels and annotations of major upgrades (PGUpgrade)
LABEL_PGUPGRADE = PREFIX + "pgupgrade"
LABEL_VERSION = PREFIX + "version"
ANNOTATION_ALLOW_UPGRADE = PREFIX + "allow-upgrade"

# Label values
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
ROLE_PATRONI_LEADER = "master"
ROLE_PATRONI_REPLICA = "replica"
ROLE_POSTGRES_DATA = "pgdata"
ROLE_POSTGRES_WAL = "pgwal"
ROLE_POSTGRES_USER = "pguser"
# Beyond PGO: the data (and WAL) volume of the primary an in-place restore replaced, kept.
ROLE_POSTGRES_DATA_BEFORE_RESTORE = "pgdata-before-restore"
ROLE_POSTGRES_WAL_BEFORE_RESTORE = "pgwal-before-restore"
ROLE_PGBOUNCER = "pgbouncer"
ROLE_MONITORING = "monitoring"
DATA_POSTGRES = "postgres"
DATA_PGBACKREST = "pgbackrest"

# Annotations
FINALIZER = PREFIX + "finalizer"
ANNOTATION_SWITCHOVER = PREFIX + "trigger-switchover"
ANNOTATION_AUTO_CREATE_USER_SCHEMA = PREFIX + "autoCreateUserSchema"
ANNOTATION_DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
ANNOTATION_PGBACKREST_BACKUP = PREFIX + "pgbackrest-backup"
ANNOTATION_PGBACKREST_CLOUD_LOG_VOLUME = PREFIX + "pgbackrest-cloud-log-volume"
ANNOTATION_PGBACKREST_CONFIG = PREFIX + "pgbackrest-config"
ANNOTATION_PGBACKREST_HASH = PREFIX + "pgbackrest-hash"
ANNOTATION_AUTHORIZE_BACKUP_REMOVAL = PREFIX + "authorizeBackupRemoval"
ANNOTATION_PGBACKREST_RESTORE = PREFIX + "pgbackrest-restore"
# Disk space, as the instance pod reports it on itself: PGO's request to grow its data volume
# (no prefix, as PGO writes it), and ours: the pod's volumes that have no room left.
ANNOTATION_SUGGESTED_PGDATA_SIZE = "suggested-pgdata-pvc-size"
ANNOTATION_FULL_VOLUMES = PREFIX + "full-volumes"
# Ours: a cluster's consent to node-loss recovery (value `enabled`; the gate
# InstanceNodeLossRecovery must be on too).
ANNOTATION_NODE_LOSS_RECOVERY = PREFIX + "node-loss-recovery"

# Label values of backup Jobs (`pgbackrest-backup`)
BACKUP_REPLICA_CREATE = "replica-create"
BACKUP_MANUAL = "manual"
BACKUP_SCHEDULED = "scheduled"

# Status condition types (PGO's where PGO has them)
CONDITION_READY = "Ready"
CONDITION_PROGRESSING = "Progressing"
CONDITION_PV_RESIZING = "PersistentVolumeResizing"
CONDITION_PV_RESIZE_ERROR = "PersistentVolumeResizeError"
CONDITION_SERVICES_CONFIGURED = "ServicesConfigured"
CONDITION_SWITCHOVER_REFUSED = "SwitchoverRefused"
CONDITION_UNSUPPORTED_SPEC = "UnsupportedSpec"
CONDITION_RECONCILE_FAILED = "ReconcileFailed"
CONDITION_PGBACKREST_REPO_HOST_READY = "PGBackRestRepoHostReady"
CONDITION_PGBACKREST_REPLICA_REPO_READY = "PGBackRestReplicaRepoReady"
CONDITION_PGBACKREST_REPLICA_CREATE = "PGBackRestReplicaCreate"
CONDITION_PGBACKREST_MANUAL_BACKUP = "PGBackRestManualBackupSuccessful"
# Beyond PGO: WAL reaches the repositories (steps/archiving.py).
CONDITION_PGBACKREST_ARCHIVING = "PGBackRestArchiving"
CONDITION_POSTGRES_DATA_INITIALIZED = "PostgresDataInitialized"
CONDITION_PGBACKREST_RESTORE_PROGRESSING = "PGBackRestoreProgressing"  # sic: PGO's spelling
# Beyond PGO: what a requested restore target resolves to in the repository.
CONDITION_PGBACKREST_RESTORE_PREVIEW = "PGBackRestRestorePreview"
CONDITION_PROXY_AVAILABLE = "ProxyAvailable"
# Beyond PGO: what the standby leader of a standby cluster replayed (steps/patroni.py).
CONDITION_STANDBY = "StandbyReplaying"
# Beyond PGO: an instance volume with no room left for PostgreSQL (steps/disk_space.py).
CONDITION_VOLUME_FULL = "PersistentVolumeFull"
# Beyond PGO: an instance's server stops at start (steps/postgres_startup.py).
CONDITION_POSTGRES_STARTUP_FAILED = "PostgresStartupFailed"
# Beyond PGO: an instance's volume is bound to a lost node (steps/node_loss.py).
CONDITION_INSTANCE_NODE_LOST = "InstanceNodeLost"

# Reasons of conditions and Events
REASON_INVALID_SPEC = "InvalidSpec"
REASON_PAUSED = "Paused"
REASON_SHUTDOWN = "Shutdown"
REASON_ALL_INSTANCES_READY = "AllInstancesReady"
REASON_INSTANCES_NOT_READY = "InstancesNotReady"
REASON_MISSING_IMAGE = "MissingRequiredImage"
REASON_STEP_FAILED = "StepFailed"
REASON_RECONCILE_FAILED = "ReconcileFailed"
REASON_NOT_IMPLEMENTED = "NotImplemented"
REASON_INVALID_STANDBY = "InvalidStandbyConfiguration"
REASON_UNSUPPORTED_SPEC = "UnsupportedSpec"
REASON_RESIZING = "Resizing"
REASON_RESIZE_REFUSED = "ResizeRefused"
REASON_PV_RESIZE_ERROR = "PersistentVolumeResizeError"
# Volume auto-grow (PGO's Event reasons) and a full volume (ours).
REASON_VOLUME_AUTO_GROW = "VolumeAutoGrow"
REASON_VOLUME_LIMIT_REACHED = "VolumeLimitReached"
REASON_DESIRED_VOLUME_ABOVE_LIMIT = "DesiredVolumeAboveLimit"
REASON_VOLUME_REQUEST_OVER_LIMIT = "VolumeRequestOverLimit"
REASON_VOLUME_FULL = "VolumeFull"
REASON_VOLUME_SPACE_AVAILABLE = "VolumeSpaceAvailable"
REASON_MISCONFIGURED_CLUSTER_IP = "MisconfiguredClusterIP"
# Node-loss recovery (ours, steps/node_loss.py): Events of each step, reasons of its condition.
REASON_INSTANCE_NODE_LOST = "InstanceNodeLost"
REASON_INSTANCE_VOLUME_RELEASED = "InstanceVolumeReleased"
REASON_INSTANCE_RECREATED = "InstanceRecreated"
REASON_NODE_LOSS_RECOVERY_DISABLED = "NodeLossRecoveryDisabled"
REASON_NODE_LOSS_RECOVERY_UNSAFE = "NodeLossRecoveryUnsafe"
REASON_NODE_LOSS_RECOVERING = "NodeLossRecovering"
REASON_ROLLING_UPDATE = "RollingUpdate"
REASON_SWITCHOVER_INVALID = "SwitchoverInvalid"
REASON_USERS_FAILED = "PostgresUsersFailed"
REASON_USERS_NOT_PROVISIONED = "PostgresUsersNotProvisioned"
REASON_INIT_SQL_FAILED = "DatabaseInitSQLFailed"
REASON_INIT_SQL_DONE = "DatabaseInitSQLDone"
REASON_POSTGRES_LIBRARY_MISSING = "PostgresLibraryMissing"

# Containers, ports, users
CONTAINER_DATABASE = "database"
CONTAINER_STARTUP = "postgres-startup"
CONTAINER_NSS_WRAPPER_INIT = "nss-wrapper-init"
CONTAINER_REPLICATION_CERT_COPY = "replication-cert-copy"
CONTAINER_PGBACKREST = "pgbackrest"
CONTAINER_PGBACKREST_CONFIG = "pgbackrest-config"
CONTAINER_PGBACKREST_LOG_DIR = "pgbackrest-log-dir"
CONTAINER_PGBACKREST_RESTORE = "pgbackrest-restore"
CONTAINER_MOVE_PGDATA_DIR = "pgdata-move-job"
CONTAINER_MOVE_PGWAL_DIR = "pgwal-move-job"
CONTAINER_MOVE_REPO_DIR = "repo-move-job"
CONTAINER_PGBOUNCER = "pgbouncer"
CONTAINER_PGBOUNCER_CONFIG = "pgbouncer-config"
PORT_PGBOUNCER = "pgbouncer"
PGBOUNCER_USER = "_crunchypgbouncer"
PORT_POSTGRES = "postgres"
CONTAINER_EXPORTER = "exporter"
PORT_EXPORTER = "exporter"
MONITORING_USER = "ccp_monitoring"
REPLICATION_USER = "_crunchyrepl"
ROOT_CA_SECRET = "pgo-root-cacert"

# Kubernetes' util/rand alphabet: no vowels (no words) and no look-alike characters.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

FIELD_MANAGER = "postgrescluster-controller"
CLUSTER_DOMAIN = "cluster.local"


def pgbackrest_config(cluster: str) -> str:
    """The ConfigMap with pgBackRest's configuration files."""
    return f"{cluster}-pgbackrest-config"


def pgbackrest_secret(cluster: str) -> str:
    """The Secret with pgBackRest's CA, client and repository host certificates."""
    return f"{cluster}-pgbackrest"


def pgbackrest_rbac(cluster: str) -> str:
    """The ServiceAccount, Role and RoleBinding of the backup Jobs."""
    return f"{cluster}-pgbackrest"


def repo_host_rbac(cluster: str) -> str:
    """The ServiceAccount of the repository host."""
    return f"{cluster}-repohost"


def repo_host(cluster: str) -> str:
    """The StatefulSet of the dedicated repository host (its one pod is `<name>-0`)."""
    return f"{cluster}-repo-host"


def repo_volume(cluster: str, repo: str) -> str:
    """The claim of a volume repository."""
    return f"{cluster}-{repo}"


def restore_job(cluster: str) -> str:
    """The Job that fills a data volume from a pgBackRest repository (restores and clones)."""
    return f"{cluster}-pgbackrest-restore"


def restore_config(cluster: str) -> str:
    """The ConfigMap and Secret through which the restore Job reaches the source repository."""
    return f"{cluster}-pgbackrest-restore"


def restore_config_copy(name: str, index: int) -> str:
    """The copy, beside the restore Job, of the source cluster's `configuration` item `index`."""
    return f"{name}-restorecopy-{index}"


def move_data_directory_job(cluster: str) -> str:
    """The Job that moves an adopted volume's data directory into place (PGO's migration)."""
    return f"{cluster}-move-pgdata-dir"


def move_wal_directory_job(cluster: str) -> str:
    """The Job that moves an adopted volume's WAL directory into place (PGO's migration)."""
    return f"{cluster}-move-pgwal-dir"


def move_repo_directory_job(cluster: str) -> str:
    """The Job that moves an adopted volume's pgBackRest repository into place (PGO's)."""
    return f"{cluster}-move-pgbackrest-repo-dir"


def bootstrap_restore_id(cluster: str) -> str:
    """`status.pgbackrest.restore.id` of the restore that bootstraps a new cluster (PGO's)."""
    return f"~pgo-bootstrap-{cluster}"


def patroni_record_labels(cluster: str) -> dict[str, str]:
    """The labels of Patroni's records in the DCS (Endpoints: leader, configuration, failover,
    synchronous state)."""
    return {LABEL_CLUSTER: cluster, LABEL_PATRONI: patroni_scope(cluster)}


def backup_job_prefix(cluster: str) -> str:
    """Backup Jobs are `<prefix><4 random characters>`."""
    return f"{cluster}-backup-"


def backup_cron_job(cluster: str, repo: str, backup_type: str) -> str:
    """The CronJob of one repository's scheduled backups of one type (full, diff, incr)."""
    return f"{cluster}-{repo}-{backup_type}"


def pgbackrest_labels(cluster: str) -> dict[str, str]:
    """What every pgBackRest object of a cluster carries."""
    return {LABEL_CLUSTER: cluster, LABEL_PGBACKREST: ""}


def repo_volume_labels(cluster: str, repo: str) -> dict[str, str]:
    """The labels of a volume repository's claim."""
    return {
        **pgbackrest_labels(cluster),
        LABEL_PGBACKREST_REPO: repo,
        LABEL_PGBACKREST_VOLUME: "",
        LABEL_DATA: DATA_PGBACKREST,
    }


def repo_host_labels(cluster: str) -> dict[str, str]:
    """The selector of the repository host's pod."""
    return {**pgbackrest_labels(cluster), LABEL_PGBACKREST_DEDICATED: ""}


def pgbouncer(cluster: str) -> str:
    """pgBouncer's Deployment, Service, ConfigMap, Secret and PodDisruptionBudget."""
    return f"{cluster}-pgbouncer"


def pgbouncer_labels(cluster: str) -> dict[str, str]:
    """The labels of pgBouncer's objects, also the selector of its pods."""
    return {LABEL_CLUSTER: cluster, LABEL_ROLE: ROLE_PGBOUNCER}


def monitoring_secret(cluster: str) -> str:
    """The Secret with the `ccp_monitoring` password and verifier."""
    return f"{cluster}-monitoring"


def exporter_queries_config(cluster: str) -> str:
    """The ConfigMap with the exporter's default queries."""
    return f"{cluster}-exporter-queries-config"


def exporter_web_config(cluster: str) -> str:
    """The ConfigMap with the exporter's web (TLS) configuration."""
    return f"{cluster}-exporter-web-config"


def monitoring_labels(cluster: str) -> dict[str, str]:
    """The labels of the monitoring Secret and ConfigMaps."""
    return {LABEL_CLUSTER: cluster, LABEL_ROLE: ROLE_MONITORING}


def cluster_config_map(cluster: str) -> str:
    """The ConfigMap with the cluster-wide Patroni configuration."""
    return f"{cluster}-config"


def cluster_pod_service(cluster: str) -> str:
    """The headless Service that gives every pod of the cluster a DNS name."""
    return f"{cluster}-pods"


def cluster_primary_service(cluster: str) -> str:
    """The Service clients use to reach the primary."""
    return f"{cluster}-primary"


def cluster_replica_service(cluster: str) -> str:
    """The Service that balances over the replicas."""
    return f"{cluster}-replicas"


def cluster_instance_rbac(cluster: str) -> str:
    """The ServiceAccount, Role and RoleBinding of the instance pods (Patroni's DCS access)."""
    return f"{cluster}-instance"


def patroni_scope(cluster: str) -> str:
    """Patroni's scope, also the name of its leader Service and Endpoints."""
    return f"{cluster}-ha"


def patroni_distributed_configuration(cluster: str) -> str:
    """The Service (and Patroni's Endpoints) holding the DCS configuration."""
    return f"{cluster}-ha-config"


def cluster_certificate_secret(cluster: str) -> str:
    """The Secret with the server certificate of the primary and replica Services."""
    return f"{cluster}-cluster-cert"


def replication_certificate_secret(cluster: str) -> str:
    """The Secret with the replication user's client certificate."""
    return f"{cluster}-replication-cert"


def instance_config_map(instance: str) -> str:
    """The ConfigMap with one instance's Patroni configuration."""
    return f"{instance}-config"


def instance_certificates(instance: str) -> str:
    """The Secret with one instance's certificates."""
    return f"{instance}-certs"


def instance_data_volume(instance: str) -> str:
    """The PVC with one instance's data directory."""
    return f"{instance}-pgdata"


def instance_wal_volume(instance: str) -> str:
    """The PVC with one instance's WAL, when the spec separates it."""
    return f"{instance}-pgwal"


def instance_set_disruption_budget(cluster: str, instance_set: str) -> str:
    """The PodDisruptionBudget of one instance set."""
    return f"{cluster}-set-{instance_set}"


def postgres_user_secret(cluster: str, user: str) -> str:
    """The Secret with a user's credentials and connection strings."""
    return f"{cluster}-pguser-{user}"


def generate_instance(cluster: str, instance_set: str) -> str:
    """A new instance (StatefulSet) name: `<cluster>-<set>-<4 random safe characters>`."""
    suffix = "".join(secrets.choice(SAFE_ALPHABET) for _ in range(4))
    return f"{cluster}-{instance_set}-{suffix}"


def instance_pod(instance: str) -> str:
    """The only pod of an instance's StatefulSet."""
    return f"{instance}-0"


def cluster_labels(cluster: str) -> dict[str, str]:
    """The label every object of the cluster carries (and every informer selects on)."""
    return {LABEL_CLUSTER: cluster}


def instance_labels(cluster: str, instance_set: str, instance: str) -> dict[str, str]:
    """The labels of an instance's objects."""
    return {LABEL_CLUSTER: cluster, LABEL_INSTANCE_SET: instance_set, LABEL_INSTANCE: instance}


def service_dns(service: str, namespace: str) -> str:
    """The name cluster DNS answers for a Service: `<service>.<namespace>.svc`."""
    return f"{service}.{namespace}.svc"


def instance_pod_dns(pod: str, cluster: str, namespace: str) -> str:
    """An instance pod's own DNS name, under the headless `<cluster>-pods` Service."""
    return service_dns(f"{pod}.{cluster_pod_service(cluster)}", namespace)


def certificate_dns_names(name: str, namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The four DNS forms PGO puts in a certificate, the absolute FQDN (trailing dot) first."""
    qualified = service_dns(name, namespace)
    return [f"{qualified}.{domain}.", qualified, f"{name}.{namespace}", name]
