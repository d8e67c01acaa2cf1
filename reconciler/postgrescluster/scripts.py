"""Shell programs that run inside the instance pods' containers.

They are passed as `bash -ceu -- <script> <name> <args...>` so that a pod template holds the whole
program: nothing depends on a file baked into an image, and a change of a script is a change of
the template (a rollout), never a silent difference between pods.
"""

from __future__ import annotations

# Arguments: $1 = major version, $2 = WAL directory.
STARTUP = r"""
declare -r expected_major="$1" wal_directory="$2"
say() { printf '%s\n' "$*"; }

actual_major=$(postgres --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
if [[ "${actual_major}" != "${expected_major}" ]]; then
  say "The image runs PostgreSQL ${actual_major}; spec.postgresVersion says ${expected_major}." >&2
  exit 1
fi

# PGDATA must belong to us with mode 0700, or PostgreSQL refuses to start.
if [[ -d "${PGDATA}" && ! -O "${PGDATA}" ]]; then
  say "${PGDATA} belongs to another user; moving it aside and starting from a fresh directory."
  mv "${PGDATA}" "${PGDATA}.foreign-$(date +%s)"
fi
install --directory --mode=0700 "${PGDATA}"
install --directory --mode=0775 /pgdata/pgbackrest/log /pgdata/patroni/log /pgdata/logs/postgres

# The replication client certificate must be private to be accepted by libpq.
for file in tls.crt tls.key ca.crt; do
  install -D --mode=0600 "/pgconf/tls/replication/${file}" "/tmp/replication/${file}"
done

found_major=$(cat "${PGDATA}/PG_VERSION" 2> /dev/null || true)
if [[ -n "${found_major}" && "${found_major}" != "${expected_major}" ]]; then
  say "The data directory holds PostgreSQL ${found_major} data, not ${expected_major}." >&2
  exit 1
fi

# Keep WAL where the spec wants it, with a symlink from the data directory.
if [[ -d "${PGDATA}/pg_wal" && ! -L "${PGDATA}/pg_wal" ]]; then
  install --directory --mode=0700 "${wal_directory}"
  cp -a "${PGDATA}/pg_wal/." "${wal_directory}/"
  rm -rf "${PGDATA}/pg_wal"
fi
if [[ -f "${PGDATA}/PG_VERSION" && ! -e "${PGDATA}/pg_wal" ]]; then
  ln -s "${wal_directory}" "${PGDATA}/pg_wal"
fi

# Patroni decides whether this instance recovers; a leftover signal file would decide for it.
rm -f "${PGDATA}/recovery.signal"
"""

# Re-installs the replication certificate when its Secret changes and tells PostgreSQL to reload.
REPLICATION_CERT_COPY = r"""
checksum() { find /pgconf/tls -type f -exec md5sum {} + 2>/dev/null | sort | md5sum; }
last=$(checksum)
while sleep 5; do
  current=$(checksum)
  if [[ "${current}" != "${last}" ]]; then
    for file in tls.crt tls.key ca.crt; do
      install -D --mode=0600 "/pgconf/tls/replication/${file}" "/tmp/replication/${file}"
    done
    pkill -HUP --exact --parent=1 postgres || true
    last="${current}"
  fi
done
"""

# Reports the instance's disk space on its own pod, through the API with the pod's account (no
# other process sees the filesystem): PGO's `suggested-pgdata-pvc-size`, half as much again as
# /pgdata once it is more than 75% used (PGO's rule; the operator acts on it under the
# AutoGrowVolumes gate), and `full-volumes`, the pod volumes with less than one WAL segment
# (16 MiB) free, where PostgreSQL can no longer write. A patch goes only when a value changes.
_DISK_SPACE = r"""
account=/var/run/secrets/kubernetes.io/serviceaccount
api="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}"
annotate() {
  curl --silent --show-error --fail --max-time 10 --cacert "${account}/ca.crt" \
    --header "Authorization: Bearer $(< "${account}/token")" \
    --header 'Content-Type: application/merge-patch+json' --request PATCH \
    --data "{\"metadata\":{\"annotations\":{$1}}}" --output /dev/null \
    "${api}/api/v1/namespaces/$(< "${account}/namespace")/pods/${HOSTNAME}"
}
json() { if [[ -n "$1" ]]; then printf '"%s"' "$1"; else printf null; fi; }
df_field() { df "--block-size=$1" "--output=$2" "$3" | awk 'NR == 2 {print $1 + 0}'; }
suggested='' reported=''
report_space() {
  local size use full='' volume avail
  size=$(df_field M size /pgdata) use=$(df_field M pcent /pgdata)
  if (( use > 75 )); then suggested="$(( size / 2 + size ))Mi"; fi
  for volume in postgres-data:/pgdata postgres-wal:/pgwal; do
    [[ -d "${volume#*:}" ]] || continue
    avail=$(df_field K avail "${volume#*:}")
    if (( avail < 16384 )); then full="${full:+${full},}${volume%%:*}"; fi
  done
  if [[ "${suggested}/${full}" != "${reported}" ]] &&
    annotate "\"suggested-pgdata-pvc-size\":$(json "${suggested}"),$(
      )\"postgres-operator.crunchydata.com/full-volumes\":$(json "${full}")"
  then
    reported="${suggested}/${full}"
  fi
}
"""
_LOOP = "last=$(checksum)\nwhile sleep 5; do\n"


def replication_cert_copy(*, report_disk_space: bool) -> str:
    """The `replication-cert-copy` sidecar's program, reporting disk space every 5 s too when
    `report_disk_space`; without it, the program of the operator versions before the report,
    byte for byte (see `steps/instances.py`: an upgrade must change no running pod)."""
    if not report_disk_space:
        return REPLICATION_CERT_COPY
    head, loop = REPLICATION_CERT_COPY.split(_LOOP)
    return f"{head}{_DISK_SPACE.lstrip()}{_LOOP}  report_space || true\n{loop}"
