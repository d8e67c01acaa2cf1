"""The PGUpgrade Jobs, as PGO names and labels them: `<upgrade>-pgdata` runs pg_upgrade on the
startup instance's volumes, `<upgrade>-<instance>` removes a replica's old data directory.

Both copy the pod template of the instance's StatefulSet (its volumes, service account, security
context) and replace its containers with one `database` container running a script; the Jobs run
once (`backoffLimit: 0`), since a half-done upgrade must be looked at, not retried.
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler import naming
from reconciler.api.v1beta1.shared import API_VERSION
from reconciler.intent import batch_job
from reconciler.runtime.client import JSON

ROLE_UPGRADE = "pgupgrade"
ROLE_REMOVE_DATA = "removedata"
TRANSFER_FLAGS = {"Clone": "--clone", "Copy": "--copy", "CopyFileRange": "--copy-file-range"}

# Arguments: $1 = old major, $2 = new major, $3 = pg_upgrade's transfer flag, $4 = --jobs.
# Programs are found where Crunchy Data's upgrade image keeps each major: /usr/pgsql-<major>.
UPGRADE_SCRIPT = r"""
declare -r old_version="$1" new_version="$2" transfer="$3" jobs="$4"
declare -r old_bin="/usr/pgsql-${old_version}/bin" new_bin="/usr/pgsql-${new_version}/bin"
declare -r old_data="/pgdata/pg${old_version}" new_data="/pgdata/pg${new_version}"
printf 'Upgrading PostgreSQL %s to %s (pg_upgrade %s, %s jobs)\n' "$@"

# The pod's UID may have no name in the image: nss_wrapper gives it the name postgres.
uid=$(id -u) gid=$(id -g)
NSS_WRAPPER_PASSWD=$(mktemp) NSS_WRAPPER_GROUP=$(mktemp)
(sed "/^postgres:x:/ d; /^[^:]*:x:${uid}:/ d" /etc/passwd
 echo "postgres:x:${uid}:${gid}::/pgdata:") > "${NSS_WRAPPER_PASSWD}"
(sed "/^postgres:x:/ d; /^[^:]*:x:${gid}:/ d" /etc/group
 echo "postgres:x:${gid}:") > "${NSS_WRAPPER_GROUP}"
export LD_PRELOAD=/usr/lib64/libnss_wrapper.so NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP

cd /pgdata
for program in "${old_bin}/postgres" "${new_bin}/initdb" "${new_bin}/pg_upgrade"; do
  if [[ ! -x "${program}" ]]; then
    echo "The upgrade image lacks ${program}: no upgrade ${old_version} to ${new_version}." >&2
    exit 1
  fi
done

echo 'Step 1: the libraries the old cluster preloads, which the new major must have too'
libraries=$("${old_bin}/postgres" -D "${old_data}" -C shared_preload_libraries)
# A library the new major lacks would stop pg_upgrade with a message about its server's log;
# name it here, before anything is written.
IFS=', ' read -r -a wanted <<< "${libraries}"
for library in "${wanted[@]}"; do
  if [[ -n "${library}" && ! -e "${new_bin}/../lib/${library}.so" ]]; then
    echo "PostgreSQL ${new_version} of this image lacks the library ${library}, which the" \
      "cluster preloads (shared_preload_libraries = '${libraries}'): use an upgrade image" \
      "that has it. Nothing was changed." >&2
    exit 1
  fi
done

# A directory left by an earlier attempt stops the Job, as with PGO: it is the user's to look
# at (after a finished --link upgrade it shares the data files with the old one).
echo 'Step 2: a new data directory, initialized with checksums'
mkdir "${new_data}"
"${new_bin}/initdb" --data-checksums --username=postgres --pgdata="${new_data}"
echo "shared_preload_libraries = '${libraries}'" >> "${new_data}/postgresql.conf"

echo 'Step 3: the old data directory private to its owner, as pg_upgrade requires'
chmod 0700 "${old_data}"

echo 'Step 4: pg_upgrade --check'
upgrade() {
  "${new_bin}/pg_upgrade" --old-bindir="${old_bin}" --new-bindir="${new_bin}" \
    --old-datadir="${old_data}" --new-datadir="${new_data}" --username=postgres \
    "${transfer}" --jobs="${jobs}" "$@"
}
time upgrade --check

echo 'Step 5: pg_upgrade'
time upgrade

# Patroni's DCS is gone (the operator removed it): the parameters it kept come from this file.
echo 'Step 6: Patroni dynamic configuration'
if [[ -f "${old_data}/patroni.dynamic.json" ]]; then
  cp "${old_data}/patroni.dynamic.json" "${new_data}/"
fi
echo 'The upgrade is complete.'
"""

# Arguments: $1 = old major. Only a replica's cleanly stopped data directory is removed.
REMOVE_DATA_SCRIPT = r"""
declare -r old_version="$1"
declare -r old_data="/pgdata/pg${old_version}"
printf 'Removing the PostgreSQL %s data directory of this replica\n' "${old_version}"
cd /pgdata
if [[ -d "${old_data}" ]]; then
  state=$("/usr/pgsql-${old_version}/bin/pg_controldata" "${old_data}" | grep 'cluster state')
  if [[ "${state}" != *"shut down in recovery"* ]]; then
    echo "${old_data} is not a replica's cleanly stopped data directory (${state}); kept." >&2
    exit 1
  fi
  wal=$(realpath "${old_data}/pg_wal")
  rm -rf "${old_data}" "${wal}"
fi
echo 'Removed.'
"""


def upgrade_job_name(upgrade: str) -> str:
    """PGO's name of the pg_upgrade Job."""
    return f"{upgrade}-pgdata"


def remove_data_job_name(upgrade: str, instance: str) -> str:
    """PGO's name of the Job that removes an instance's old data directory."""
    return f"{upgrade}-{instance}"


def transfer_flag(spec: JSON) -> str:
    """pg_upgrade's flag for `spec.transferMethod`: hard links unless another is asked for."""
    return TRANSFER_FLAGS.get(str(spec.get("transferMethod") or ""), "--link")


def parallel_jobs(spec: JSON, *, cpu_concurrency: bool) -> int:
    """`--jobs`: `spec.jobs`, else (feature gate PGUpgradeCPUConcurrency) one less than the
    whole CPUs the Job's resources name, at least one."""
    if spec.get("jobs"):
        return int(spec["jobs"])
    if not cpu_concurrency:
        return 1
    resources = spec.get("resources") or {}
    cpus = max(
        (
            _whole_cpus(str(resources.get(kind, {}).get("cpu", "0")))
            for kind in ("limits", "requests")
        ),
        default=0,
    )
    return max(1, cpus - 1)


def _whole_cpus(quantity: str) -> int:
    if quantity.endswith("m"):
        return int(quantity[:-1]) // 1000
    return int(float(quantity))


def upgrade_command(spec: JSON, *, cpu_concurrency: bool) -> list[str]:
    """The pg_upgrade container's command."""
    return [
        "bash",
        "-ceu",
        "--",
        UPGRADE_SCRIPT,
        "upgrade",
        str(spec["fromPostgresVersion"]),
        str(spec["toPostgresVersion"]),
        transfer_flag(spec),
        str(parallel_jobs(spec, cpu_concurrency=cpu_concurrency)),
    ]


def remove_data_command(spec: JSON) -> list[str]:
    """The remove-data container's command."""
    return ["bash", "-ceu", "--", REMOVE_DATA_SCRIPT, "remove", str(spec["fromPostgresVersion"])]


def labels(upgrade: JSON, role: str) -> dict[str, str]:
    """PGO's labels of an upgrade's Jobs and their pods."""
    return {
        naming.LABEL_PGUPGRADE: upgrade["metadata"]["name"],
        naming.LABEL_CLUSTER: upgrade["spec"]["postgresClusterName"],
        naming.LABEL_ROLE: role,
    }


def _job(
    upgrade: JSON, statefulset: JSON, *, name: str, labels: dict[str, str], command: list[str]
) -> JSON:
    spec = upgrade["spec"]
    meta = upgrade["metadata"]
    user = spec.get("metadata") or {}
    all_labels = {**(user.get("labels") or {}), **labels}
    annotations = {
        **(user.get("annotations") or {}),
        naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_DATABASE,
    }
    template: dict[str, Any] = copy.deepcopy(statefulset["spec"]["template"])
    pod = template["spec"]
    database = next(c for c in pod["containers"] if c["name"] == naming.CONTAINER_DATABASE)
    container: JSON = {
        "name": naming.CONTAINER_DATABASE,
        "image": spec["image"],
        "command": command,
        "volumeMounts": database.get("volumeMounts") or [],
    }
    for key, field in (
        ("securityContext", database.get("securityContext")),
        ("imagePullPolicy", spec.get("imagePullPolicy")),
        ("resources", spec.get("resources")),
    ):
        if field:
            container[key] = field
    pod["containers"] = [container]
    for key in ("initContainers", "ephemeralContainers"):
        pod.pop(key, None)
    pod["restartPolicy"] = "Never"
    for key, field in (
        ("imagePullSecrets", spec.get("imagePullSecrets")),
        ("affinity", spec.get("affinity")),
        ("priorityClassName", spec.get("priorityClassName")),
        ("tolerations", spec.get("tolerations")),
    ):
        pod.pop(key, None)
        if field:
            pod[key] = field
    job_meta = {
        "name": name,
        "namespace": meta["namespace"],
        "labels": all_labels,
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "PGUpgrade",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    return batch_job(job_meta, pod, pod_annotations=annotations, backoff_limit=0)


def upgrade_job(upgrade: JSON, startup: JSON, *, cpu_concurrency: bool) -> JSON:
    """The Job that runs pg_upgrade on the volumes of the startup instance `startup` (its
    StatefulSet). `upgrade["spec"]["image"]` must be resolved (spec or operator default)."""
    return _job(
        upgrade,
        startup,
        name=upgrade_job_name(upgrade["metadata"]["name"]),
        labels={
            **labels(upgrade, ROLE_UPGRADE),
            naming.LABEL_VERSION: str(upgrade["spec"]["toPostgresVersion"]),
        },
        command=upgrade_command(upgrade["spec"], cpu_concurrency=cpu_concurrency),
    )


def remove_data_job(upgrade: JSON, replica: JSON) -> JSON:
    """The Job that removes the old data directory of the replica `replica` (its StatefulSet),
    which then is cloned afresh from the upgraded primary."""
    return _job(
        upgrade,
        replica,
        name=remove_data_job_name(upgrade["metadata"]["name"], replica["metadata"]["name"]),
        labels=labels(upgrade, ROLE_REMOVE_DATA),
        command=remove_data_command(upgrade["spec"]),
    )
