"""What an image means on the process node: this machine's programs, run as a given user.

The process node runs no image. A pod's image names a profile: the environment the real image
would set (PATH to its PostgreSQL binaries, above all), the user the image runs as, and a few
files the real image has at paths Debian does not use. The container's root filesystem is this
machine's, seen through a private copy-on-write layer (see `containers`).

Where this differs from a kubelet running Crunchy Data's images, and why it does not matter to
what the e2e tier tests:

- PostgreSQL, Patroni, pgBackRest and pgBouncer are Debian's builds (PostgreSQL 15, Patroni
  3.0.2), not Crunchy's; the commands, configuration files and protocols are the same.
- The image user is Debian's `postgres` (its UID, not 26); the pod's `fsGroup` is still added
  to its groups and owns the volumes, as a kubelet does.
- Crunchy's images carry nss_wrapper at `/usr/lib64/libnss_wrapper.so`; Debian's package puts
  it elsewhere, so the profile links it into that path inside the container.
"""

from __future__ import annotations

import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field

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


PROFILES: Mapping[str, ImageProfile] = {
    f"{REGISTRY}/postgres:{POSTGRES_VERSION}": _postgres(POSTGRES_VERSION),
    f"{REGISTRY}/pgbackrest": _postgres(POSTGRES_VERSION),
    f"{REGISTRY}/pgbouncer": _postgres(POSTGRES_VERSION),
}


def related_images() -> dict[str, str]:
    """The operator's RELATED_IMAGE_* variables that point at this node's profiles."""
    return {
        f"RELATED_IMAGE_POSTGRES_{POSTGRES_VERSION}": f"{REGISTRY}/postgres:{POSTGRES_VERSION}",
        "RELATED_IMAGE_PGBACKREST": f"{REGISTRY}/pgbackrest",
        "RELATED_IMAGE_PGBOUNCER": f"{REGISTRY}/pgbouncer",
    }


def profile(image: str) -> ImageProfile:
    """The profile of `image` (a tag or digest after the name is ignored only if not listed)."""
    if image in PROFILES:
        return PROFILES[image]
    name = image.split("@", 1)[0]
    if name in PROFILES:
        return PROFILES[name]
    known = ", ".join(sorted(PROFILES))
    raise UnknownImageError(f"the process node has no profile for image {image!r}; known: {known}")
