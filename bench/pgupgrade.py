"""Major upgrade duration: pg_upgrade 15 -> 17 with `--link` (PGO's default) against `--copy`.

    .venv/bin/python -m bench.pgupgrade   # --gib 1.0 --rounds 1 (as root: runs as postgres)

The upgrade Job's work without the operator around it: on this machine the Job itself cannot
finish an upgrade of a cluster the operator made, since PostgreSQL 17 here has no pgAudit (see
README, "PostgreSQL majors"). So: a PostgreSQL 15 data directory (Debian's) with at least
`--gib` of table data, then for each transfer method and round, a fresh copy of it, initdb of
17 (`make packages` installs it) and the Job's two pg_upgrade runs, `--check` then the upgrade,
with `--jobs=1` as the Job has by default on a pod without CPU requests. Each upgraded cluster
is started and its row count checked.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

OLD, NEW = 15, 17
PORT = 55439
ROWS_PER_GIB = 10_600_000  # rows of (bigint, md5 text, md5 text): 9,000,000 made 0.85 GiB


def _bin(major: int, program: str) -> str:
    return f"/usr/lib/postgresql/{major}/bin/{program}"


def _as_postgres(*argv: str, cwd: Path) -> str:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def _server(major: int, data: Path, action: str, work: Path) -> None:
    options = f"-k {work} -p {PORT} -c listen_addresses="
    argv = [_bin(major, "pg_ctl"), "-D", str(data), "-w", "-o", options, "-l", str(work / "log")]
    _as_postgres(*argv, action, cwd=work)


def _sql(major: int, query: str, work: Path) -> str:
    argv = [_bin(major, "psql"), "-h", str(work), "-p", str(PORT), "-U", "postgres", "-Atqc"]
    return _as_postgres(*argv, query, "postgres", cwd=work).strip()


def _load(work: Path, gib: float) -> tuple[Path, int, int]:
    """A stopped 15 data directory with the data; its size in bytes and its row count."""
    data = work / "template"
    _as_postgres(_bin(OLD, "initdb"), "-k", "-U", "postgres", "-D", str(data), cwd=work)
    _server(OLD, data, "start", work)
    rows = int(gib * ROWS_PER_GIB)
    _sql(
        OLD,
        "create table loaded as select n, md5(n::text) a, md5((n + 1)::text) b "
        f"from generate_series(1, {rows}) n",
        work,
    )
    size = int(_sql(OLD, "select pg_database_size('postgres')", work))
    _server(OLD, data, "stop", work)
    return data, size, rows


def _upgrade(work: Path, template: Path, method: str, rows: int) -> tuple[float, float]:
    """Seconds of `pg_upgrade --check` and of `pg_upgrade`, on a fresh copy of `template`."""
    old, new = work / f"pg{OLD}", work / f"pg{NEW}"
    for path in (old, new):
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["cp", "-a", str(template), str(old)], check=True)
    _as_postgres(_bin(NEW, "initdb"), "-k", "-U", "postgres", "-D", str(new), cwd=work)
    # The copy's pages on disk before the clock starts: pg_upgrade syncs the new data
    # directory at its end, and with --link that would write out the bench's own copy.
    os.sync()
    argv = [
        _bin(NEW, "pg_upgrade"),
        f"--old-bindir=/usr/lib/postgresql/{OLD}/bin",
        f"--new-bindir=/usr/lib/postgresql/{NEW}/bin",
        f"--old-datadir={old}",
        f"--new-datadir={new}",
        "--username=postgres",
        f"--{method}",
        "--jobs=1",
    ]
    started = time.monotonic()
    _as_postgres(*argv, "--check", cwd=work)
    checked = time.monotonic()
    _as_postgres(*argv, cwd=work)
    done = time.monotonic()
    _server(NEW, new, "start", work)
    try:
        counted = int(_sql(NEW, "select count(*) from loaded", work))
    finally:
        _server(NEW, new, "stop", work)
    if counted != rows:
        raise AssertionError(f"{counted} rows after the upgrade, {rows} before")
    return checked - started, done - checked


def main() -> None:
    """Load, then time each method; print a table row per method."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pgupgrade-", dir="/var/tmp"))
    shutil.chown(work, "postgres", "postgres")
    try:
        started = time.monotonic()
        template, size, rows = _load(work, args.gib)
        print(f"loaded {size / 2**30:.2f} GiB ({rows} rows) in {time.monotonic() - started:.1f} s")
        for method in ("link", "copy"):
            for _ in range(args.rounds):
                check, upgrade = _upgrade(work, template, method, rows)
                print(
                    f"| --{method} | {size / 2**30:.2f} GiB | check {check:.1f} s "
                    f"| upgrade {upgrade:.1f} s | total {check + upgrade:.1f} s |"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
