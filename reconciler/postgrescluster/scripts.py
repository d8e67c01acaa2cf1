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
