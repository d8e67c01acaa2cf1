"""pgBackRest restores: what a restore asks for, the Job that carries it out, and what the
repository says a target resolves to.

A restore (in place, point in time, or the bootstrap of a clone) always fills the empty data
volume of a new instance: the volumes a cluster had stay untouched until the restore has
succeeded, so a failed restore leaves the cluster its data. The Job restores, then replays WAL
with a throw-away configuration until PostgreSQL leaves recovery (at the target, or at the end
of the archive), stops it, and moves the data directory aside; Patroni's `existing` bootstrap
method moves it back in place when the restored instance first starts.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler import naming
from reconciler.containers import (
    NSS_WRAPPER_ENV,
    RESTRICTED_SECURITY_CONTEXT,
    mount,
    nss_wrapper_init,
    postgres_pod_security_context,
)
from reconciler.intent import Owner, batch_job, metadata
from reconciler.pgbackrest import config
from reconciler.postgres import config as postgres
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON

# pgBackRest's recovery types that end in a primary; `standby` and `preserve` do not.
TARGET_TYPES = ("time", "xid", "name", "lsn")
TYPES = ("default", "immediate", *TARGET_TYPES)
# Options the operator sets itself (PGO refuses the same ones), and what to write instead.
_OPERATOR_OPTIONS = {
    "repo": "use the repoName field instead",
    "stanza": "the operator sets it (dataSource.pgbackrest.stanza names another stanza)",
    "pg1-path": "the operator sets it",
    "target-action": "the operator sets it (the restored cluster is promoted)",
    "link-map": "the operator sets it",
}
# Kept small: a wrong target fails every attempt, and each attempt restores the whole backup.
BACKOFF_LIMIT = 1
CONF_KEY = "pgbackrest_restore.conf"
# The restore's configuration file, and the source's client certificate, in the Job's pod.
_SECRET_ITEMS = (
    ("pgbackrest.ca-roots", config.CA_FILE),
    ("pgbackrest-client.crt", config.CLIENT_CERT_FILE),
    ("pgbackrest-client.key", config.CLIENT_KEY_FILE),
)
_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


class InvalidRestore(ValueError):
    """A restore request that cannot succeed; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Request:
    """What a restore's options ask for: the recovery type and target, and a backup set."""

    type: str = "default"
    target: str | None = None
    backup_set: str | None = None
    target_time: datetime.datetime | None = None


def _words(options: Sequence[str]) -> list[str]:
    try:
        return shlex.split(" ".join(options))
    except ValueError as error:
        raise InvalidRestore(f"options {list(options)!r} do not parse: {error}") from None


def _pairs(words: list[str]) -> list[tuple[str, str | None]]:
    """`--name=value`, `--name value` and `--flag`, as (name, value)."""
    pairs: list[tuple[str, str | None]] = []
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--") or word == "--":
            raise InvalidRestore(
                f"option {word!r} is not a pgBackRest option: write each as --name=value, "
                'and quote values with spaces (--target="2026-11-30 10:30:00+00")'
            )
        name, sep, value = word[2:].partition("=")
        if sep:
            pairs.append((name, value))
        elif index + 1 < len(words) and not words[index + 1].startswith("--"):
            pairs.append((name, words[index + 1]))
            index += 1
        else:
            pairs.append((name, None))
        index += 1
    return pairs


def parse_time(text: str) -> datetime.datetime:
    """A `--target` time as pgBackRest and PostgreSQL read it (`2026-11-30 10:15:00+00`);
    without a zone it is UTC, the zone of the clusters' PostgreSQL."""
    match = _TIME.match(text.strip())
    if match is None:
        raise InvalidRestore(f"--target={text!r} is not a time: write it as YYYY-MM-DD HH:MM:SS+00")
    day, clock, zone = match.groups()
    if clock.count(":") == 1:
        clock += ":00"
    zone = zone or "+00"
    if zone == "Z":
        zone = "+00"
    if len(zone) == 3:
        zone += ":00"
    try:
        return datetime.datetime.fromisoformat(f"{day}T{clock}{zone}")
    except ValueError as error:
        raise InvalidRestore(f"--target={text!r} is not a time: {error}") from None


def parse_options(options: Sequence[str]) -> Request:
    """What `options` ask for; `InvalidRestore` for options the operator sets, types that
    would never end recovery, and targets missing, superfluous or malformed."""
    found: dict[str, str | None] = {}
    for name, value in _pairs(_words(options)):
        if name in _OPERATOR_OPTIONS:
            raise InvalidRestore(f"option --{name} is not allowed: {_OPERATOR_OPTIONS[name]}")
        found[name] = value
    type_ = found.get("type") or "default"
    if type_ not in TYPES:
        raise InvalidRestore(
            f"--type={type_} is not allowed: the restored cluster must end recovery; "
            f"use one of {', '.join(TYPES)}"
        )
    target = found.get("target")
    if type_ in TARGET_TYPES and not target:
        raise InvalidRestore(f"--type={type_} needs --target=... to say where recovery stops")
    if target and type_ not in TARGET_TYPES:
        raise InvalidRestore(f"--target needs --type set to one of {', '.join(TARGET_TYPES)}")
    return Request(
        type=type_,
        target=target,
        backup_set=found.get("set"),
        target_time=parse_time(target) if type_ == "time" and target else None,
    )


def restore_options(
    options: Sequence[str],
    *,
    stanza: str,
    repo: str,
    postgres_version: int,
    wal_volume: bool,
) -> str:
    """The command line of `pgbackrest restore`: the user's options as written (their quotes
    are the shell's), then the operator's."""
    request = parse_options(options)
    ours = [
        f"--stanza={stanza}",
        f"--pg1-path={postgres.data_directory(postgres_version)}",
        f"--repo={config.repo_number(repo)}",
        f"--link-map=pg_wal={postgres.wal_directory(postgres_version, separate_volume=wal_volume)}",
    ]
    if request.type != "default":
        # Recovery runs without hot standby, where pausing at the target means shutting down.
        ours.append("--target-action=promote")
    return " ".join([*options, *(shlex.quote(word) for word in ours)])


def source_hash(parts: Sequence[str]) -> str:
    """Identifies what a restore Job restores (source, repository, options): a Job built from
    other values is out of date."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


# Arguments: $0, PGDATA, the WAL directory, then the options of `pgbackrest restore`.
_SCRIPT = """\
pgdata="$1" waldir="$2" options="$3"

# A retried Job starts over: these directories are the new instance's, never another's.
rm -rf "${pgdata}" "${pgdata}_bootstrap" "${waldir}"
install --directory --mode=0700 "${pgdata}" "${waldir}"
bash -xc "pgbackrest restore ${options}"
# The settings Patroni kept in the backup belong to the source cluster.
rm -f "${pgdata}/patroni.dynamic.json"

# Replay WAL with a configuration of our own (the restored one names files of the source's
# pods), reachable only over a socket in /tmp. Without hot standby no parameter needs to match
# the source's, and nobody can connect: the control file tells when recovery has ended.
echo 'local all all peer' > /tmp/restore_hba.conf
: > /tmp/restore_ident.conf
cat > /tmp/restore.conf <<EOF
hba_file = '/tmp/restore_hba.conf'
ident_file = '/tmp/restore_ident.conf'
listen_addresses = ''
unix_socket_directories = '/tmp'
hot_standby = off
archive_mode = on
archive_command = 'false'
EOF
# (archive_command false: WAL and timeline history stay in pg_wal until the cluster's own
# archiving takes them to the repository.)
state() { LC_ALL=C pg_controldata "${pgdata}" | sed -n 's/^Database cluster state: *//p'; }
pg_ctl start --wait --timeout=31536000 --pgdata="${pgdata}" \\
  --options='-c config_file=/tmp/restore.conf'
# Recovery ends at the target (then the server is promoted), or fails (a target it never
# reached, WAL missing), and PostgreSQL stops.
until [[ "$(state)" == 'in production' ]]; do
  pg_ctl status --pgdata="${pgdata}" > /dev/null || exit 1
  sleep 1
done
pg_ctl stop --wait --mode=fast --pgdata="${pgdata}"
[[ "$(state)" == 'shut down' ]]
# The recovery settings pgBackRest wrote would stop future replicas at the same target.
sed -i -e '/^recovery_target/d' "${pgdata}/postgresql.auto.conf"
mv "${pgdata}" "${pgdata}_bootstrap"
"""


def _job_settings(source: Mapping[str, Any]) -> JSON:
    optional = {
        "affinity": source.get("affinity"),
        "tolerations": source.get("tolerations"),
        "priorityClassName": source.get("priorityClassName"),
    }
    return {k: v for k, v in optional.items() if v}


def _config_volume(cluster: str, configuration: Sequence[JSON], *, certificates: bool) -> JSON:
    """The restore's files in `conf.d`: the source's `configuration` projections (copied
    beside the cluster when they are another cluster's), the restore's own file, and the
    source's client certificate for a repository host's TLS server."""
    sources: list[JSON] = [
        *configuration,
        {
            "configMap": {
                "name": naming.restore_config(cluster),
                "items": [{"key": CONF_KEY, "path": CONF_KEY}],
            }
        },
    ]
    if certificates:
        items: list[JSON] = [{"key": key, "path": path} for key, path in _SECRET_ITEMS]
        items[-1]["mode"] = 0o600
        sources.append({"secret": {"name": naming.restore_config(cluster), "items": items}})
    return {"name": "pgbackrest-config", "projected": {"sources": sources}}


def restore_job(
    owner: Owner,
    spec: JSON,
    image: str,
    *,
    instance_set: JSON,
    instance: str,
    source: Mapping[str, Any],
    options: str,
    configuration: Sequence[JSON],
    certificates: bool,
    source_digest: str,
    identifier: str,
) -> JSON:
    """`<c>-pgbackrest-restore`: restore into `instance`'s new volumes (PGO's labels and
    names), for the restore `identifier` (`status.pgbackrest.restore.id`). `source` gives the
    Job's resources and scheduling (the data source or restore section); `configuration` the
    projections of repository credentials."""
    version = int(spec["postgresVersion"])
    wal_volume = bool(instance_set.get("walVolumeClaimSpec"))
    pgdata = postgres.data_directory(version)
    waldir = postgres.wal_directory(version, separate_volume=wal_volume)
    labels = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_PGBACKREST_RESTORE: "",
        naming.LABEL_STARTUP_INSTANCE: instance,
    }
    annotations = {
        naming.ANNOTATION_PGBACKREST_HASH: source_digest,
        naming.ANNOTATION_PGBACKREST_RESTORE: identifier,
    }
    extra = ((spec.get("backups") or {}).get("pgbackrest") or {}).get("metadata")
    meta = metadata(owner, naming.restore_job(owner.name), labels, annotations, extra=extra)
    pull = {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    resources = source.get("resources") or {}
    mounts = [mount("postgres-data", "/pgdata")]
    volumes: list[JSON] = [
        {
            "name": "postgres-data",
            "persistentVolumeClaim": {"claimName": naming.instance_data_volume(instance)},
        }
    ]
    if wal_volume:
        mounts.append(mount("postgres-wal", "/pgwal"))
        volumes.append(
            {
                "name": "postgres-wal",
                "persistentVolumeClaim": {"claimName": naming.instance_wal_volume(instance)},
            }
        )
    mounts += [
        mount("pgbackrest-config", config.CONFIG_DIRECTORY, read_only=True),
        mount("tmp", "/tmp"),
    ]
    volumes += [
        _config_volume(owner.name, configuration, certificates=certificates),
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    container = {
        "name": naming.CONTAINER_PGBACKREST_RESTORE,
        "image": image,
        **pull,
        "command": ["bash", "-ceu", "--", _SCRIPT, "pgbackrest-restore", pgdata, waldir, options],
        "env": [{"name": "PGHOST", "value": "/tmp"}, *NSS_WRAPPER_ENV],
        "resources": resources,
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
        "volumeMounts": mounts,
    }
    pod: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The instances' account: a cloud identity it has reaches the repository too.
        "serviceAccountName": naming.cluster_instance_rbac(owner.name),
        "securityContext": postgres_pod_security_context(spec),
        "initContainers": [nss_wrapper_init(image, resources, pull)],
        "containers": [container],
        "volumes": volumes,
        **_job_settings(source),
    }
    if spec.get("imagePullSecrets"):
        pod["imagePullSecrets"] = spec["imagePullSecrets"]
    default_container = {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_PGBACKREST_RESTORE}
    return batch_job(meta, pod, pod_annotations=default_container, backoff_limit=BACKOFF_LIMIT)


def cloud_conf(data_source: Mapping[str, Any]) -> str:
    """The restore's configuration for `spec.dataSource.pgbackrest`: a cloud repository that
    no cluster here manages, located by its `repo` and `global` options."""
    repo = data_source["repo"]
    name = str(repo["name"])
    options = {
        f"{name}-path": config.repo_path(name),
        **config.cloud_options(repo),
        "log-level-file": "off",
        **{str(k): str(v) for k, v in (data_source.get("global") or {}).items()},
    }
    return config.render({"global": options})


def config_map(owner: Owner, conf: str) -> JSON:
    """`<c>-pgbackrest-restore`: the restore's configuration file."""
    labels = {**naming.cluster_labels(owner.name), naming.LABEL_PGBACKREST_RESTORE_CONFIG: ""}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, naming.restore_config(owner.name), labels),
        "data": {CONF_KEY: conf},
    }


def secret(owner: Owner, source: Mapping[str, str]) -> JSON:
    """`<c>-pgbackrest-restore`: the source cluster's CA and client certificate (base64, as
    read from its `<source>-pgbackrest` Secret), accepted by its repository host."""
    labels = {**naming.cluster_labels(owner.name), naming.LABEL_PGBACKREST_RESTORE_CONFIG: ""}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(owner, naming.restore_config(owner.name), labels),
        "data": {key: source[key] for key, _ in _SECRET_ITEMS if key in source},
    }


def copied(owner: Owner, obj: JSON, index: int) -> JSON:
    """A copy, in the cluster's namespace, of a ConfigMap or Secret the source cluster
    projects into its pgBackRest configuration (e.g. the credentials of a cloud repository)."""
    labels = {**naming.cluster_labels(owner.name), naming.LABEL_PGBACKREST_RESTORE_CONFIG: ""}
    name = naming.restore_config_copy(obj["metadata"]["name"], index)
    result: JSON = {
        "apiVersion": "v1",
        "kind": obj["kind"],
        "metadata": metadata(owner, name, labels),
    }
    for key in ("type", "data", "binaryData"):
        if key in obj:
            result[key] = obj[key]
    return result


def copied_projections(configuration: Sequence[JSON]) -> list[JSON]:
    """The source's `configuration` projections, renamed to their copies."""
    result = []
    for index, projection in enumerate(configuration):
        renamed = dict(projection)
        for kind in ("secret", "configMap"):
            if kind in renamed:
                source = dict(renamed[kind])
                source["name"] = naming.restore_config_copy(source["name"], index)
                renamed[kind] = source
        result.append(renamed)
    return result


@dataclass(frozen=True, slots=True)
class Preview:
    """What a restore will do, as the repository tells it."""

    backup: str  # the backup set's label
    backup_stop: datetime.datetime
    wal_start: str
    wal_max: str

    def message(self, repo: str, request: Request) -> str:
        """The preview condition's message."""
        target = {
            "default": "to the end of the archived WAL",
            "immediate": "to the end of the backup (consistency)",
        }.get(request.type, f"to --target={request.target} (--type={request.type})")
        stop = self.backup_stop.strftime("%Y-%m-%d %H:%M:%S+00")
        return (
            f"{repo}: backup {self.backup} (ended {stop}), then WAL from {self.wal_start} "
            f"(archived through {self.wal_max}) {target}"
        )


def preview(info: Any, request: Request, repo: str, *, now: datetime.datetime) -> Preview:
    """Which backup set and WAL range `request` resolves to in `info` (the output of
    `pgbackrest info --output=json` for one repository); `InvalidRestore` when the repository
    cannot satisfy it (no backup, an unknown set, a target time before the first backup or
    after `now`: recovery would then end before reaching it, and fail)."""
    if request.target_time is not None and request.target_time > now:
        raise InvalidRestore(
            f"--target={request.target} is in the future: recovery cannot reach it"
        )
    stanza = info[0] if isinstance(info, list) and info else {}
    backups = sorted(stanza.get("backup") or [], key=lambda b: b["timestamp"]["stop"])
    if not backups:
        raise InvalidRestore(f"{repo} holds no backup to restore from: take a backup first")
    if request.backup_set is not None:
        chosen = [b for b in backups if b["label"] == request.backup_set]
        if not chosen:
            labels = ", ".join(b["label"] for b in backups)
            raise InvalidRestore(
                f"--set={request.backup_set} is not a backup in {repo} (it holds {labels})"
            )
    elif request.target_time is not None:
        target = request.target_time.timestamp()
        chosen = [b for b in backups if b["timestamp"]["stop"] <= target]
        if not chosen:
            first = _utc(backups[0]["timestamp"]["stop"]).strftime("%Y-%m-%d %H:%M:%S+00")
            raise InvalidRestore(
                f"--target={request.target} is before the earliest backup in {repo}, "
                f"which ended {first}: choose a later time"
            )
    else:
        chosen = backups
    backup = chosen[-1]
    archives = [
        a for a in stanza.get("archive") or [] if a.get("database") == backup.get("database")
    ]
    wal_max = max((str(a.get("max") or "") for a in archives), default="")
    return Preview(
        backup=str(backup["label"]),
        backup_stop=_utc(backup["timestamp"]["stop"]),
        wal_start=str((backup.get("archive") or {}).get("start") or ""),
        wal_max=wal_max or "(none)",
    )


def _utc(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def info_argv(stanza: str, repo: str) -> list[str]:
    """What the operator execs in a pod with the repository's configuration to read it."""
    return [
        "pgbackrest",
        "info",
        f"--stanza={stanza}",
        f"--repo={config.repo_number(repo)}",
        "--output=json",
        "--log-level-console=warn",
    ]


def restoring_in_place(status: Mapping[str, Any]) -> bool:
    """Whether an in-place restore is under way: the instances stay stopped meanwhile."""
    return conditions.is_true(status, naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING)
