"""`spec.dataSource.volumes`: claims made by something else (a PGO v4 cluster, say) that become
the cluster's own, as in PGO's migration path: `pgDataVolume` and `pgWALVolume` the first
instance's data and WAL volumes, `pgBackRestVolume` the first repository's volume. Each claim
keeps its name, spec and contents; it gets PGO's labels and the cluster as its owner. Jobs with
PGO's names move what the claims hold to where this operator keeps it:

- `<c>-move-pgdata-dir`: the data directory (`directory`, default `pg<version>`) to where
  Patroni's `existing` bootstrap takes it from (`<PGDATA>_bootstrap`);
- `<c>-move-pgwal-dir`: the WAL directory (`directory`, else where the data directory's
  `pg_wal` link points) to `/pgwal/pg<version>_wal`, and the data directory's `pg_wal` link
  rewritten to it (PGO renames it to `/pgwal/<cluster>-wal` and relies on the link resolving);
- `<c>-move-pgbackrest-repo-dir`: `directory/archive` and `directory/backup` to the claim's
  root, where the repository host mounts the repository (when `directory` is set, as PGO).

Nothing is deleted: each script refuses, with the reason in its log, a claim that does not hold
what it should.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from reconciler import naming
from reconciler.containers import RESTRICTED_SECURITY_CONTEXT, mount, postgres_pod_security_context
from reconciler.intent import Owner, batch_job, metadata, owner_reference
from reconciler.postgres import config as postgres
from reconciler.postgrescluster.data_source import restore_source
from reconciler.runtime import jobs
from reconciler.runtime.client import JSON

DATA = "pgDataVolume"
WAL = "pgWALVolume"
REPO = "pgBackRestVolume"


def requested(spec: Mapping[str, Any]) -> dict[str, JSON]:
    """The claims the spec asks to adopt, by field. Data and WAL volumes are not adopted when
    the cluster restores from a repository (PGO's order of data sources)."""
    volumes = (spec.get("dataSource") or {}).get("volumes") or {}
    found = {field: volumes[field] for field in (DATA, WAL, REPO) if volumes.get(field)}
    if restore_source(spec) is not None:
        found.pop(DATA, None)
        found.pop(WAL, None)
    return found


def problem(spec: Mapping[str, Any]) -> str | None:
    """Why the volumes asked for cannot be adopted as the spec stands, and what to change;
    None when they can."""
    volumes = requested(spec)
    if WAL in volumes and DATA not in volumes:
        return (
            "pgWALVolume needs pgDataVolume: a WAL directory is only of use with the data "
            "directory it belongs to; name both claims"
        )
    if WAL in volumes and not spec["instances"][0].get("walVolumeClaimSpec"):
        return (
            "pgWALVolume needs spec.instances[0].walVolumeClaimSpec: the first instance keeps "
            "its WAL on the adopted claim, the set's other instances on claims of that spec"
        )
    if REPO in volumes:
        repos = ((spec.get("backups") or {}).get("pgbackrest") or {}).get("repos") or []
        if not repos or not repos[0].get("volume"):
            return (
                "pgBackRestVolume needs spec.backups.pgbackrest.repos[0] to be a volume "
                "repository (repos[0].volume): the adopted claim becomes its volume"
            )
    return None


def claim_labels(
    owner: Owner, spec: Mapping[str, Any], field: str, instance_set: str, instance: str
) -> dict[str, str]:
    """The labels an adopted claim gets: those of the volume it becomes."""
    if field == REPO:
        repo = spec["backups"]["pgbackrest"]["repos"][0]["name"]
        return naming.repo_volume_labels(owner.name, repo)
    role = naming.ROLE_POSTGRES_WAL if field == WAL else naming.ROLE_POSTGRES_DATA
    return {
        **naming.instance_labels(owner.name, instance_set, instance),
        naming.LABEL_ROLE: role,
        naming.LABEL_DATA: naming.DATA_POSTGRES,
    }


def adoption_patch(owner: Owner, labels: Mapping[str, str], claim: JSON) -> JSON:
    """The merge patch that makes an existing claim the cluster's: `labels`, and the cluster
    as its owner (it goes with the cluster, as the cluster's own volumes do)."""
    references = [
        r for r in claim["metadata"].get("ownerReferences") or [] if r.get("uid") != owner.uid
    ]
    return {
        "metadata": {
            "labels": dict(labels),
            "ownerReferences": [*references, owner_reference(owner)],
        }
    }


# Arguments: $0, the directory inside the volume, PGDATA, and "wal" when a WAL volume is
# adopted too.
_MOVE_DATA = """\
directory="/pgdata/$1" pgdata="$2" wal_adopted="$3"
echo "volume contents:"; ls -l /pgdata
if [[ -d "${pgdata}_bootstrap" ]]; then
  echo "${pgdata}_bootstrap is in place already"
elif [[ -f "${directory}/PG_VERSION" ]]; then
  link=$(readlink "${directory}/pg_wal" || :)
  if [[ -n "${link}" && "${link}" != /pgdata/* && -z "${wal_adopted}" ]]; then
    echo "${directory}/pg_wal links to ${link}, outside this volume: name the claim that" \\
      "holds it in spec.dataSource.volumes.pgWALVolume" >&2
    exit 1
  fi
  mv "${directory}" "${pgdata}_bootstrap"
else
  echo "${directory} holds no PostgreSQL data directory (no PG_VERSION)" >&2
  exit 1
fi
# Settings Patroni kept there belong to the cluster the volume came from.
rm -f "${pgdata}_bootstrap/patroni.dynamic.json"
"""

# Arguments: $0, the directory inside the WAL volume (or empty), PGDATA, the WAL directory.
_MOVE_WAL = """\
directory="$1" pgdata="$2" wal="$3"
link="${pgdata}_bootstrap/pg_wal"
echo "volume contents:"; ls -l /pgwal
if [[ -d "${link}" && ! -L "${link}" ]]; then
  echo "the data directory keeps its WAL in pg_wal itself, not on this claim: remove" \\
    "spec.dataSource.volumes.pgWALVolume" >&2
  exit 1
fi
if [[ -d "${wal}" ]]; then
  echo "${wal} is in place already"
else
  source=${directory:+/pgwal/${directory}}
  source=${source:-$(readlink "${link}" || :)}
  if [[ "${source}" != /pgwal/* || ! -d "${source}" ]]; then
    echo "no WAL directory on this claim: ${source:-pg_wal is no link} (set" \\
      "spec.dataSource.volumes.pgWALVolume.directory)" >&2
    exit 1
  fi
  mv "${source}" "${wal}"
fi
ln -sfn "${wal}" "${link}"
"""

# Arguments: $0, the directory inside the volume.
_MOVE_REPO = """\
directory="/pgbackrest/$1"
echo "volume contents:"; ls -l /pgbackrest
for part in archive backup; do
  if [[ -d "/pgbackrest/${part}" ]]; then
    echo "/pgbackrest/${part} is in place already"
  elif [[ -d "${directory}/${part}" ]]; then
    mv "${directory}/${part}" /pgbackrest/
  else
    echo "${directory} holds no pgBackRest repository (no ${part}/)" >&2
    exit 1
  fi
done
"""


# Per field: the move Job's name, its label, its container's name.
_MOVES = {
    DATA: (
        naming.move_data_directory_job,
        naming.LABEL_MOVE_PGDATA_DIR,
        naming.CONTAINER_MOVE_PGDATA_DIR,
    ),
    WAL: (
        naming.move_wal_directory_job,
        naming.LABEL_MOVE_PGWAL_DIR,
        naming.CONTAINER_MOVE_PGWAL_DIR,
    ),
    REPO: (
        naming.move_repo_directory_job,
        naming.LABEL_MOVE_PGBACKREST_REPO_DIR,
        naming.CONTAINER_MOVE_REPO_DIR,
    ),
}


def move_jobs(owner: Owner, spec: JSON, postgres_image: str, pgbackrest_image: str) -> list[JSON]:
    """The move Jobs the adopted claims need, in the order they run (data before WAL: the WAL
    Job rewrites the link in the data directory the data Job put in place)."""
    volumes = requested(spec)
    version = int(spec["postgresVersion"])
    pgdata = postgres.data_directory(version)
    first = spec["instances"][0]
    moves: list[_Move] = []
    if DATA in volumes:
        data = volumes[DATA]
        directory = str(data.get("directory") or f"pg{version}")
        script = [_MOVE_DATA, directory, pgdata, "wal" * (WAL in volumes)]
        claims = {"postgres-data": (str(data["pvcName"]), "/pgdata")}
        moves.append(_Move(DATA, postgres_image, first, script, claims))
    if WAL in volumes:
        wal = volumes[WAL]
        waldir = postgres.wal_directory(version, separate_volume=True)
        script = [_MOVE_WAL, str(wal.get("directory") or ""), pgdata, waldir]
        claims = {
            "postgres-data": (str(volumes[DATA]["pvcName"]), "/pgdata"),
            "postgres-wal": (str(wal["pvcName"]), "/pgwal"),
        }
        moves.append(_Move(WAL, postgres_image, first, script, claims))
    if REPO in volumes and volumes[REPO].get("directory"):
        repo = volumes[REPO]
        host = spec["backups"]["pgbackrest"].get("repoHost") or {}
        claims = {"pgbackrest-repo": (str(repo["pvcName"]), "/pgbackrest")}
        script = [_MOVE_REPO, str(repo["directory"])]
        moves.append(_Move(REPO, pgbackrest_image, host, script, claims))
    return [_job(owner, spec, move) for move in moves]


class _Move(NamedTuple):
    """One move Job: the field of its claim, its image, the section that gives its resources
    and priority class (an instance set, the repository host), its script then the script's
    arguments, and its claims (volume name: claim, mount path)."""

    field: str
    image: str
    settings: JSON
    script: list[str]
    claims: dict[str, tuple[str, str]]


def _job(owner: Owner, spec: JSON, move: _Move) -> JSON:
    """A move Job: its container runs the script once with the claims mounted."""
    job_name, label, container = _MOVES[move.field]
    script, claims, settings = move.script, move.claims, move.settings
    labels = {**naming.cluster_labels(owner.name), naming.LABEL_MOVE_JOB: "", label: ""}
    meta = metadata(owner, job_name(owner.name), labels)
    pull = {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    pod: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": postgres_pod_security_context(spec),
        "containers": [
            {
                "name": container,
                "image": move.image,
                **pull,
                "command": ["bash", "-ceu", "--", script[0], "move", *script[1:]],
                "resources": settings.get("resources") or {},
                "securityContext": RESTRICTED_SECURITY_CONTEXT,
                "volumeMounts": [mount(volume, path) for volume, (_, path) in claims.items()],
            }
        ],
        "volumes": [
            {"name": volume, "persistentVolumeClaim": {"claimName": claim}}
            for volume, (claim, _) in claims.items()
        ],
    }
    if settings.get("priorityClassName"):
        pod["priorityClassName"] = settings["priorityClassName"]
    if spec.get("imagePullSecrets"):
        pod["imagePullSecrets"] = spec["imagePullSecrets"]
    default_container = {naming.ANNOTATION_DEFAULT_CONTAINER: container}
    return batch_job(meta, pod, pod_annotations=default_container, backoff_limit=0)


def repo_claim_in_place(spec: Mapping[str, Any], claim: JSON | None, job: JSON | None) -> bool:
    """Whether the adopted repository claim (`claim`, as cached with the cluster's objects) is
    the first repository's volume, its repository moved into place when `directory` asked
    for it (`job`, its move Job)."""
    volume = requested(spec).get(REPO)
    if volume is None:
        return True
    if claim is None:
        return False
    return not volume.get("directory") or (job is not None and jobs.finished(job) == "Complete")
