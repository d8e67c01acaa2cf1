"""The instance StatefulSet and its pod template, laid out as PGO lays them out.

Inputs are the cluster spec and one instance set as JSON, with PGO's in-memory defaults applied.
The output depends on nothing else, so the template (and its hash) is stable across operator
restarts and upgrades unless the spec changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.containers import (
    NSS_WRAPPER_ENV,
    RESTRICTED_SECURITY_CONTEXT,
    nss_wrapper_init,
    postgres_pod_security_context,
    preferred_spread,
)
from reconciler.containers import mount as _mount
from reconciler.intent import Owner, merged_labels_and_annotations, metadata
from reconciler.patroni import config as patroni_config
from reconciler.pgbackrest import pods as pgbackrest_pods
from reconciler.postgres import config as postgres_config
from reconciler.postgrescluster import scripts
from reconciler.runtime.client import JSON

TMP_SIZE_LIMIT = "16Mi"
# A container and the volumes it needs, added to the pod by a subsystem (the exporter).
Exporter = tuple[JSON, list[JSON]]


def _postgres_env(spec: JSON) -> list[JSON]:
    version = spec["postgresVersion"]
    return [
        {"name": "PGDATA", "value": postgres_config.data_directory(version)},
        {"name": "PGHOST", "value": postgres_config.SOCKET_DIRECTORY},
        {"name": "PGPORT", "value": str(spec["port"])},
        {"name": "KRB5_CONFIG", "value": "/etc/postgres/krb5.conf"},
        {"name": "KRB5RCACHEDIR", "value": "/tmp"},
        {"name": "LDAPTLS_CACERT", "value": "/etc/postgres/ldap/ca.crt"},
    ]


def _patroni_env(owner: Owner, spec: JSON) -> list[JSON]:
    version = spec["postgresVersion"]
    port = spec["port"]
    patroni_port = spec["patroni"]["port"]
    pods = naming.cluster_pod_service(owner.name)
    return [
        {"name": "PATRONI_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "PATRONI_KUBERNETES_POD_IP",
            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
        },
        {
            "name": "PATRONI_KUBERNETES_PORTS",
            "value": f"- name: {naming.PORT_POSTGRES}\n  port: {port}\n  protocol: TCP\n",
        },
        {"name": "PATRONI_POSTGRESQL_CONNECT_ADDRESS", "value": f"$(PATRONI_NAME).{pods}:{port}"},
        {"name": "PATRONI_POSTGRESQL_LISTEN", "value": f"*:{port}"},
        {"name": "PATRONI_POSTGRESQL_CONFIG_DIR", "value": postgres_config.data_directory(version)},
        {"name": "PATRONI_POSTGRESQL_DATA_DIR", "value": postgres_config.data_directory(version)},
        {
            "name": "PATRONI_RESTAPI_CONNECT_ADDRESS",
            "value": f"$(PATRONI_NAME).{pods}:{patroni_port}",
        },
        {"name": "PATRONI_RESTAPI_LISTEN", "value": f"*:{patroni_port}"},
        {"name": "PATRONICTL_CONFIG_FILE", "value": patroni_config.CONFIG_DIRECTORY},
    ]


def _probe(path: str, spec: JSON) -> JSON:
    # Patroni answers its REST API once per loop; a probe waits half a loop and tolerates a lease.
    sync = spec["patroni"]["syncPeriodSeconds"]
    ttl = spec["patroni"]["leaderLeaseDurationSeconds"]
    return {
        "httpGet": {"path": path, "port": spec["patroni"]["port"], "scheme": "HTTPS"},
        "initialDelaySeconds": 3,
        "timeoutSeconds": max(sync // 2, 1),
        "periodSeconds": sync,
        "successThreshold": 1,
        "failureThreshold": max(ttl // sync, 1),
    }


def _volumes(
    owner: Owner, spec: JSON, instance_set: JSON, instance: str, adopted: Mapping[str, str]
) -> list[JSON]:
    cluster_cert = spec.get("customTLSSecret") or {
        "name": naming.cluster_certificate_secret(owner.name)
    }
    replication_cert = spec.get("customReplicationTLSSecret") or {
        "name": naming.replication_certificate_secret(owner.name)
    }
    keys = ("tls.crt", "tls.key", "ca.crt")
    volumes: list[JSON] = [
        {
            "name": "cert-volume",
            "projected": {
                "defaultMode": 0o600,
                "sources": [
                    {"secret": {**cluster_cert, "items": [{"key": k, "path": k} for k in keys]}},
                    {
                        "secret": {
                            **replication_cert,
                            "items": [{"key": k, "path": f"replication/{k}"} for k in keys],
                        }
                    },
                ],
            },
        },
        {
            "name": "postgres-data",
            "persistentVolumeClaim": {
                "claimName": adopted.get(naming.ROLE_POSTGRES_DATA)
                or naming.instance_data_volume(instance)
            },
        },
        {
            "name": "database-containerinfo",
            "downwardAPI": {
                "items": [
                    *(
                        {
                            "path": path,
                            "resourceFieldRef": {
                                "containerName": naming.CONTAINER_DATABASE,
                                "resource": resource,
                                # PGO's: no divisor (stored as "0"), so whole cores and bytes,
                                # the units pgMonitor's pgnodemx queries read.
                                "divisor": "0",
                            },
                        }
                        for path, resource in (
                            ("cpu_limit", "limits.cpu"),
                            ("cpu_request", "requests.cpu"),
                            ("mem_limit", "limits.memory"),
                            ("mem_request", "requests.memory"),
                        )
                    ),
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]
            },
        },
    ]
    if files := (spec.get("config") or {}).get("files"):
        volumes.append({"name": "postgres-config", "projected": {"sources": files}})
    if instance_set.get("walVolumeClaimSpec"):
        volumes.append(
            {
                "name": "postgres-wal",
                "persistentVolumeClaim": {
                    "claimName": adopted.get(naming.ROLE_POSTGRES_WAL)
                    or naming.instance_wal_volume(instance)
                },
            }
        )
    config_map = naming.cluster_config_map(owner.name)
    volumes += [
        {
            "name": "patroni-config",
            "projected": {
                "sources": [
                    {
                        "configMap": {
                            "name": config_map,
                            "items": [
                                {"key": "patroni.yaml", "path": "~postgres-operator_cluster.yaml"}
                            ],
                        }
                    },
                    {
                        "configMap": {
                            "name": naming.instance_config_map(instance),
                            "items": [
                                {"key": "patroni.yaml", "path": "~postgres-operator_instance.yaml"}
                            ],
                        }
                    },
                    {
                        "secret": {
                            "name": naming.instance_certificates(instance),
                            "items": [
                                {
                                    "key": "patroni.ca-roots",
                                    "path": "~postgres-operator/patroni.ca-roots",
                                },
                                {
                                    "key": "patroni.crt-combined",
                                    "path": "~postgres-operator/patroni.crt+key",
                                },
                            ],
                        }
                    },
                ]
            },
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    return volumes


def _database_mounts(spec: JSON, instance_set: JSON) -> list[JSON]:
    mounts = [
        _mount("cert-volume", postgres_config.TLS_DIRECTORY, read_only=True),
        _mount("postgres-data", "/pgdata"),
        _mount("database-containerinfo", "/etc/database-containerinfo", read_only=True),
    ]
    if (spec.get("config") or {}).get("files"):
        mounts.append(_mount("postgres-config", "/etc/postgres", read_only=True))
    if instance_set.get("walVolumeClaimSpec"):
        mounts.append(_mount("postgres-wal", "/pgwal"))
    return [
        *mounts,
        _mount("patroni-config", patroni_config.CONFIG_DIRECTORY, read_only=True),
        _mount("tmp", "/tmp"),
        _mount("dshm", "/dev/shm"),
    ]


def default_topology_spread(owner: Owner) -> list[JSON]:
    """Spread the cluster's data pods over hosts and zones, as a preference only."""
    selector = {
        "matchLabels": naming.cluster_labels(owner.name),
        "matchExpressions": [
            {
                "key": naming.LABEL_DATA,
                "operator": "In",
                "values": [naming.DATA_POSTGRES, naming.DATA_PGBACKREST],
            }
        ],
    }
    return preferred_spread(selector)


def pod_spec(
    owner: Owner,
    spec: JSON,
    instance_set: JSON,
    instance: str,
    *,
    image: str,
    sidecars: bool,
    pgbackrest_image: str | None = None,
    adopted: Mapping[str, str] | None = None,
    report_disk_space: bool = True,
    exporter: Exporter | None = None,
) -> JSON:
    """The pod of one instance: Patroni running PostgreSQL, and its helpers; with
    `pgbackrest_image` (backups on), pgBackRest's TLS server and its configuration;
    `adopted` names adopted claims by their role (`pgdata`, `pgwal`; else `<instance>-pgdata`
    and `<instance>-pgwal`); `report_disk_space` has `replication-cert-copy` report the
    volumes' free space (`scripts.replication_cert_copy`); `exporter`: the monitoring
    exporter's container and volumes (monitoring on)."""
    version = spec["postgresVersion"]
    resources = instance_set.get("resources") or {}
    wal = postgres_config.wal_directory(
        version, separate_volume=bool(instance_set.get("walVolumeClaimSpec"))
    )
    pull_policy = (
        {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    )

    def container(name: str, command: list[str], **fields: Any) -> JSON:
        return {
            "name": name,
            "image": image,
            **pull_policy,
            "command": command,
            **fields,
            "securityContext": RESTRICTED_SECURITY_CONTEXT,
        }

    startup_mounts = [
        _mount("cert-volume", postgres_config.TLS_DIRECTORY, read_only=True),
        _mount("postgres-data", "/pgdata"),
    ]
    if instance_set.get("walVolumeClaimSpec"):
        startup_mounts.append(_mount("postgres-wal", "/pgwal"))
    startup_mounts.append(_mount("tmp", "/tmp"))
    init_containers = [
        container(
            naming.CONTAINER_STARTUP,
            ["bash", "-ceu", "--", scripts.STARTUP, "startup", str(version), wal],
            env=_postgres_env(spec),
            resources=resources,
            volumeMounts=startup_mounts,
        ),
        nss_wrapper_init(image, resources, pull_policy),
    ]
    containers = [
        container(
            naming.CONTAINER_DATABASE,
            ["patroni", patroni_config.CONFIG_DIRECTORY],
            env=[*_postgres_env(spec), *_patroni_env(owner, spec), *NSS_WRAPPER_ENV],
            ports=[
                {"name": naming.PORT_POSTGRES, "containerPort": spec["port"], "protocol": "TCP"}
            ],
            livenessProbe=_probe("/liveness", spec),
            readinessProbe=_probe("/readiness", spec),
            resources=resources,
            volumeMounts=_database_mounts(spec, instance_set),
        ),
        container(
            naming.CONTAINER_REPLICATION_CERT_COPY,
            [
                "bash",
                "-ceu",
                "--",
                scripts.replication_cert_copy(report_disk_space=report_disk_space),
                "replication-cert-copy",
            ],
            resources=((instance_set.get("sidecars") or {}).get("replicaCertCopy") or {}).get(
                "resources"
            )
            or {},
            # The data (and WAL) volumes too when it reports their free space.
            volumeMounts=(
                list(startup_mounts)
                if report_disk_space
                else [
                    _mount("cert-volume", postgres_config.TLS_DIRECTORY, read_only=True),
                    _mount("postgres-data", "/pgdata"),
                    _mount("tmp", "/tmp"),
                ]
            ),
        ),
    ]
    volumes = _volumes(owner, spec, instance_set, instance, adopted or {})
    if pgbackrest_image is not None:
        added, added_volumes = pgbackrest_pods.instance_additions(
            owner.name,
            instance,
            spec,
            pgbackrest_image,
            wal_volume=bool(instance_set.get("walVolumeClaimSpec")),
        )
        containers[0]["volumeMounts"].append(pgbackrest_pods.DATABASE_MOUNT)
        containers += added
        volumes += added_volumes
    if exporter is not None:
        containers.append(exporter[0])
        volumes += exporter[1]
    if sidecars:
        containers += instance_set.get("containers") or []
    topology = list(instance_set.get("topologySpreadConstraints") or [])
    if not spec.get("disableDefaultPodScheduling"):
        topology += default_topology_spread(owner)
    pod: JSON = {
        "serviceAccountName": naming.cluster_instance_rbac(owner.name),
        "enableServiceLinks": False,
        "shareProcessNamespace": True,
        "restartPolicy": "Always",
        "securityContext": postgres_pod_security_context(spec),
        "initContainers": init_containers,
        "containers": containers,
        "volumes": volumes,
    }
    optional = {
        "affinity": instance_set.get("affinity"),
        "tolerations": instance_set.get("tolerations"),
        "priorityClassName": instance_set.get("priorityClassName"),
        "imagePullSecrets": spec.get("imagePullSecrets"),
        "topologySpreadConstraints": topology,
    }
    pod.update({k: v for k, v in optional.items() if v})
    return pod


def statefulset(
    owner: Owner,
    spec: JSON,
    instance_set: JSON,
    instance: str,
    *,
    image: str,
    replicas: int,
    sidecars: bool,
    pgbackrest_image: str | None = None,
    adopted: Mapping[str, str] | None = None,
    report_disk_space: bool = True,
    exporter: Exporter | None = None,
) -> JSON:
    """The StatefulSet of one instance: one pod, deleted by the operator on updates (OnDelete);
    `adopted`, `report_disk_space` and `exporter` as for `pod_spec`."""
    set_name = instance_set["name"]
    labels = naming.instance_labels(owner.name, set_name, instance)
    extra = instance_set.get("metadata")
    pod_labels = {
        **labels,
        naming.LABEL_DATA: naming.DATA_POSTGRES,
        naming.LABEL_PATRONI: naming.patroni_scope(owner.name),
    }
    if exporter is not None:  # for Prometheus' pod discovery, as pgMonitor configures it
        pod_labels[naming.LABEL_PGMONITOR_DISCOVERY] = "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(
            owner, instance, {**labels, naming.LABEL_DATA: naming.DATA_POSTGRES}, extra=extra
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "serviceName": naming.cluster_pod_service(owner.name),
            "revisionHistoryLimit": 0,
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": _template_metadata(owner, pod_labels, extra),
                "spec": pod_spec(
                    owner,
                    spec,
                    instance_set,
                    instance,
                    image=image,
                    sidecars=sidecars,
                    pgbackrest_image=pgbackrest_image,
                    adopted=adopted,
                    report_disk_space=report_disk_space,
                    exporter=exporter,
                ),
            },
        },
    }


def _template_metadata(owner: Owner, labels: dict[str, str], extra: JSON | None) -> JSON:
    pod_labels, annotations = merged_labels_and_annotations(
        owner,
        labels,
        {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_DATABASE},
        extra=extra,
    )
    return {"labels": pod_labels, "annotations": annotations}
