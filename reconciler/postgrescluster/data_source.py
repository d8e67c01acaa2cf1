"""Where a new cluster's data comes from (`spec.dataSource`), and what that means for its
first start: no instance starts before the data is in place, and Patroni then bootstraps
from that data (its `existing` method, as PGO configures it) instead of running initdb."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.containers import RESTRICTED_SECURITY_CONTEXT, mount, postgres_pod_security_context
from reconciler.intent import Owner, metadata, owner_reference
from reconciler.postgres import config as postgres
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON


def restore_source(spec: Mapping[str, Any]) -> JSON | None:
    """The repository a new cluster restores from (`postgresCluster` wins over `pgbackrest`,
    as in PGO), as `{kind: section}`; None when none is named."""
    source = spec.get("dataSource") or {}
    if source.get("postgresCluster"):
        return {"postgresCluster": source["postgresCluster"]}
    if source.get("pgbackrest"):
        return {"pgbackrest": source["pgbackrest"]}
    return None


def adopted_data_volume(spec: Mapping[str, Any]) -> JSON | None:
    """`spec.dataSource.volumes.pgDataVolume`: an existing claim whose data the cluster
    adopts, unless a repository is named (PGO's order)."""
    if restore_source(spec) is not None:
        return None
    volumes = (spec.get("dataSource") or {}).get("volumes") or {}
    found: JSON | None = volumes.get("pgDataVolume")
    return found


def _initialized(status: Mapping[str, Any]) -> bool:
    return conditions.is_true(status, naming.CONDITION_POSTGRES_DATA_INITIALIZED)


def _bootstrapped(status: Mapping[str, Any]) -> bool:
    return bool((status.get("patroni") or {}).get("systemIdentifier"))


def awaiting_data(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a new cluster waits for its data before any instance may start."""
    requested = restore_source(spec) is not None or adopted_data_volume(spec) is not None
    return requested and not _bootstrapped(status) and not _initialized(status)


def initialized_by_bootstrap(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a cluster with a data source bootstrapped without `PostgresDataInitialized`
    saying so (a cluster given a data source after its start, or the condition removed):
    PGO then records it as `ClusterAlreadyBootstrapped`."""
    requested = restore_source(spec) is not None or adopted_data_volume(spec) is not None
    return requested and _bootstrapped(status) and not _initialized(status)


def from_existing_data(status: Mapping[str, Any]) -> bool:
    """Whether data was put in place (a restore, an adopted volume) that Patroni has yet to
    bootstrap the cluster from."""
    return _initialized(status) and not _bootstrapped(status)


def bootstrap_command(postgres_version: int) -> str:
    """Patroni's `existing` bootstrap: the data put aside in `<PGDATA>_bootstrap` moves into
    place, over the empty directory the instance's startup container made."""
    pgdata = postgres.data_directory(postgres_version)
    script = 'rmdir -- "$2" 2> /dev/null || :; mv -- "$1" "$2"'
    return shlex.join(["bash", "-ceu", "--", script, "bootstrap", f"{pgdata}_bootstrap", pgdata])


# Arguments: $0, the directory inside the volume, then PGDATA.
_MOVE_SCRIPT = """\
directory="/pgdata/$1" pgdata="$2"
echo "volume contents:"; ls -l /pgdata
if [[ -d "${pgdata}_bootstrap" ]]; then
  echo "${pgdata}_bootstrap is in place already"
elif [[ -f "${directory}/PG_VERSION" ]]; then
  mv "${directory}" "${pgdata}_bootstrap"
else
  echo "${directory} holds no PostgreSQL data directory (no PG_VERSION)" >&2
  exit 1
fi
# Settings Patroni kept there belong to the cluster the volume came from.
rm -f "${pgdata}_bootstrap/patroni.dynamic.json"
"""


def move_job(owner: Owner, spec: JSON, image: str, volume: Mapping[str, Any]) -> JSON:
    """`<c>-move-pgdata-dir`: moves the adopted claim's data directory (`directory`, or
    `pg<version>` when unset) to where the `existing` bootstrap takes it from (PGO's Job)."""
    version = int(spec["postgresVersion"])
    directory = str(volume.get("directory") or f"pg{version}")
    labels = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_MOVE_JOB: "",
        naming.LABEL_MOVE_PGDATA_DIR: "",
    }
    meta = metadata(owner, naming.move_data_directory_job(owner.name), labels)
    first = spec["instances"][0]
    pull = {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    container = {
        "name": naming.CONTAINER_MOVE_PGDATA_DIR,
        "image": image,
        **pull,
        "command": [
            "bash",
            "-ceu",
            "--",
            _MOVE_SCRIPT,
            "move",
            directory,
            postgres.data_directory(version),
        ],
        "resources": first.get("resources") or {},
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
        "volumeMounts": [mount("postgres-data", "/pgdata")],
    }
    pod: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": postgres_pod_security_context(spec),
        "containers": [container],
        "volumes": [
            {"name": "postgres-data", "persistentVolumeClaim": {"claimName": volume["pvcName"]}}
        ],
    }
    if first.get("priorityClassName"):
        pod["priorityClassName"] = first["priorityClassName"]
    if spec.get("imagePullSecrets"):
        pod["imagePullSecrets"] = spec["imagePullSecrets"]
    template_annotations = {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_MOVE_PGDATA_DIR}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": meta["labels"], "annotations": template_annotations},
                "spec": pod,
            },
        },
    }


def adoption_patch(owner: Owner, instance_set: str, instance: str, claim: JSON) -> JSON:
    """The merge patch that makes an existing claim the data volume of `instance`: PGO's
    labels, and the cluster as its owner (it goes with the cluster, as the cluster's own
    volumes do)."""
    references = [
        r for r in claim["metadata"].get("ownerReferences") or [] if r.get("uid") != owner.uid
    ]
    return {
        "metadata": {
            "labels": {
                **naming.instance_labels(owner.name, instance_set, instance),
                naming.LABEL_ROLE: naming.ROLE_POSTGRES_DATA,
                naming.LABEL_DATA: naming.DATA_POSTGRES,
            },
            "ownerReferences": [*references, owner_reference(owner)],
        }
    }
