"""What an image means on the process node: this machine's programs, run as a given user.

The process node runs no image. A pod's image names a profile: the environment the real image
would set (PATH to its PostgreSQL binaries, above all), the user the image runs as, and a few
files the real image has at paths Debian does not use. The container's root filesystem is this
machine's, seen through a private copy-on-write layer (see `containers`).

Where this differs from a kubelet running Crunchy Data's images, and why it does not matter to
what the e2e tier tests:

- PostgreSQL, Patroni, pgBackRest, pgBouncer and postgres_exporter are Debian's builds
  (PostgreSQL 15, Patroni 3.0.2, postgres_exporter 0.11.1), not Crunchy's; the commands,
  configuration files and protocols are the same.
- The image user is Debian's `postgres` (its UID, not 26); the pod's `fsGroup` is still added
  to its groups and owns the volumes, as a kubelet does.
- Crunchy's images carry nss_wrapper at `/usr/lib64/libnss_wrapper.so`; Debian's package puts
  it elsewhere, so the profile links it into that path inside the container.
- Crunchy's pgBackRest image has `/opt/crunchy/bin/pgbackrest`, which PGO's backup Jobs run:
  here it is `crunchy_pgbackrest`, run by the node's Python; and Debian's sample
  `/etc/pgbackrest.conf` (a repository path of its own) is hidden, as Crunchy's images have none.
"""

from __future__ import annotations

import pwd
import re
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import reconciler
from reconciler_envtest.containers import Mount

# The prefix of every image this node knows; the demo and the e2e tests point the operator's
# RELATED_IMAGE_* variables at these names.
REGISTRY = "envtest.reconciler.dev"
POSTGRES_VERSION = 15
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class UnknownImageError(LookupError):
    """The node has no profile for an image: the pod cannot start (a kubelet's ErrImagePull)."""


@dataclass(frozen=True, slots=True)
class ImageProfile:
    """How to run the containers of one image on this machine."""

    user: str
    env: Mapping[str, str]
    # Paths inside the container -> files of this machine they stand for.
    links: Mapping[str, str] = field(default_factory=dict)

    def ids(self) -> tuple[int, int]:
        """The image user's UID and primary GID on this machine."""
        entry = pwd.getpwnam(self.user)
        return entry.pw_uid, entry.pw_gid


def _postgres(version: int) -> ImageProfile:
    return ImageProfile(
        user="postgres",
        env={"PATH": f"/usr/lib/postgresql/{version}/bin:{_SYSTEM_PATH}", "LANG": "C.UTF-8"},
        links={"/usr/lib64/libnss_wrapper.so": "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"},
    )


# Images by the last part of their name, whatever their registry: PostgreSQL's (Crunchy Data's
# and the Docker library's, so that users' Jobs running `psql` run too) and the tools that PGO
# runs beside it, all from this machine's Debian packages.
POSTGRES_NAMES = frozenset({"postgres", "crunchy-postgres"})
TOOL_NAMES = frozenset({"pgbackrest", "crunchy-pgbackrest", "pgbouncer", "crunchy-pgbouncer"})
# pgMonitor's exporter: Debian's prometheus-postgres-exporter, as `postgres_exporter` on the
# PATH (the name PGO's container command runs), as Debian's `prometheus` user.
EXPORTER_NAMES = frozenset({"crunchy-postgres-exporter", "postgres-exporter"})
EXPORTER = ImageProfile(
    user="prometheus",
    env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
    links={"/usr/local/bin/postgres_exporter": "/usr/bin/prometheus-postgres-exporter"},
)
_CLUSTERS = Path("/usr/lib/postgresql")


# Where containers see this environment's Python packages (see `image_mounts`).
_TOOLS = "/opt/envtest"


# Files every container sees at a path of Crunchy's images (container path -> node path).
IMAGE_LINKS = {"/etc/pgbackrest.conf": "/dev/null"}


def image_mounts(directory: Path) -> list[Mount]:
    """What every container gets mounted read-only for the Crunchy stand-in: this environment's
    packages and the `/opt/crunchy/bin/pgbackrest` wrapper, written into `directory`.

    Bind mounts, not links: a link's target is reached through its parent directories, and the
    checkout or the run directory may live where the image user may not go (a home directory of
    root's, a private temporary directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "crunchy-pgbackrest"
    # The system's Python 3.11 with this environment's packages: the node's own interpreter
    # may live where the image user cannot reach.
    program = (
        f"import runpy, site, sys; sys.path[:0] = [{_TOOLS + '/src'!r}]; "
        f"site.addsitedir({_TOOLS + '/site-packages'!r}); "
        "runpy.run_module('reconciler_envtest.crunchy_pgbackrest', run_name='__main__')"
    )
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/python3 -c "{program}" "$@"\n')
    wrapper.chmod(0o755)
    sources = {
        "reconciler": Path(reconciler.__path__[0]),
        "reconciler_envtest": Path(__file__).resolve().parent,
    }
    return [
        Mount(sysconfig.get_paths()["purelib"], f"{_TOOLS}/site-packages", read_only=True),
        *(
            Mount(str(path), f"{_TOOLS}/src/{name}", read_only=True)
            for name, path in sources.items()
        ),
        Mount(str(wrapper), "/opt/crunchy/bin/pgbackrest", read_only=True),
    ]


def related_images() -> dict[str, str]:
    """The operator's RELATED_IMAGE_* variables that point at this node's profiles."""
    postgres = {
        f"RELATED_IMAGE_POSTGRES_{major}": f"{REGISTRY}/postgres:{major}"
        for major in sorted({POSTGRES_VERSION, *installed_majors()})
    }
    return {
        **postgres,
        "RELATED_IMAGE_PGBACKREST": f"{REGISTRY}/pgbackrest",
        "RELATED_IMAGE_PGBOUNCER": f"{REGISTRY}/pgbouncer",
        **_upgrade_images(),
        "RELATED_IMAGE_PGEXPORTER": f"{REGISTRY}/crunchy-postgres-exporter",
    }


def installed_majors() -> list[int]:
    """The PostgreSQL majors whose server this machine has."""
    if not _CLUSTERS.is_dir():
        return []
    return sorted(
        int(path.name)
        for path in _CLUSTERS.iterdir()
        if path.name.isdigit() and (path / "bin" / "postgres").exists()
    )


def tag_major(tag: str) -> int | None:
    """The PostgreSQL major a tag names: `16`, `16.9-bookworm`, Crunchy's `ubi9-16.9-2520`."""
    match = re.match(r"(?:ubi\d+-)?(\d+)(?:[.-]|$)", tag)
    return int(match.group(1)) if match else None


def split(image: str) -> tuple[str, str]:
    """The last part of an image's name and its tag (`""` when none): `registry:5000/a/b:t@sha`
    is `("b", "t")`."""
    reference = image.split("@", 1)[0]
    path, _, tag = reference.rpartition(":")
    if not path or "/" in tag:  # no tag; the colon was a registry's port
        path, tag = reference, ""
    return path.rsplit("/", 1)[-1], tag


# Major upgrades (PGUpgrade) ---------------------------------------------------------------
# Crunchy Data's upgrade image holds every major at /usr/pgsql-<major>, where PGO's upgrade
# Jobs look for them; here each installed major is linked there. The majors beyond Debian's 15
# come from `postgres_majors` (`make packages`) and lack pgAudit (see README, "PostgreSQL
# majors").
UPGRADE_NAMES = frozenset({"crunchy-upgrade", "pgupgrade"})


def _upgrade_images() -> dict[str, str]:
    return {"RELATED_IMAGE_PGUPGRADE": f"{REGISTRY}/crunchy-upgrade"}


def _upgrade(majors: list[int]) -> ImageProfile:
    base = _postgres(majors[-1])
    links = {f"/usr/pgsql-{major}": str(_CLUSTERS / str(major)) for major in majors}
    return ImageProfile(user=base.user, env=base.env, links={**base.links, **links})


# ---------------------------------------------------------------------------------------------


def profile(image: str) -> ImageProfile:
    """The profile of `image`; `UnknownImageError` names what this node runs instead."""
    name, tag = split(image)
    majors = installed_majors()
    if name in UPGRADE_NAMES and majors:
        return _upgrade(majors)
    if name in EXPORTER_NAMES:
        return EXPORTER
    if name in TOOL_NAMES and majors:
        return _postgres(POSTGRES_VERSION if POSTGRES_VERSION in majors else majors[-1])
    if name in POSTGRES_NAMES:
        major = tag_major(tag) if tag and tag != "latest" else POSTGRES_VERSION
        if major in majors:
            return _postgres(major)
        raise UnknownImageError(
            f"image {image!r} is PostgreSQL {major if major else tag!r}; this node has "
            f"PostgreSQL {', '.join(map(str, majors)) or 'none (install postgresql-15)'}"
        )
    known = ", ".join(sorted(POSTGRES_NAMES | TOOL_NAMES | UPGRADE_NAMES | EXPORTER_NAMES))
    raise UnknownImageError(
        f"the process node has no profile for image {image!r}; it runs images named {known} "
        f"(any registry; PostgreSQL's tag names the major), e.g. {REGISTRY}/postgres:"
        f"{POSTGRES_VERSION}"
    )
