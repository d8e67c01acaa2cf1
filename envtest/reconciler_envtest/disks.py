"""Size-capped volumes for the process node: one tmpfs per PersistentVolume, of its capacity.

A directory has no size, so a database on it never runs out of space, and a larger claim would
change nothing. The e2e tier (an isolated mount namespace of the run's own, as root) mounts a
tmpfs of the volume's capacity at the volume's directory when a pod first uses it, the part a
CSI driver's node stage plays; expanding the claim remounts it larger, online, as a CSI
driver's node expansion does. Containers bind-mount that directory, so they share its
superblock and see the new size at once. tmpfs takes memory only for what is written.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

from reconciler.runtime import quantity

PAGE = 4096


class DiskError(RuntimeError):
    """A volume's filesystem cannot be mounted or resized."""


def size_bytes(capacity: str) -> int:
    """The tmpfs size for a capacity (`256Mi`): whole pages, at least one."""
    value = quantity.parse(capacity)
    if value is None or value <= 0:
        raise DiskError(f"volume capacity {capacity!r} is not a positive quantity")
    return max(math.ceil(value / PAGE), 1) * PAGE


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DiskError(f"mount {' '.join(args)}: {done.stderr.strip()}")


def stage(directory: Path, capacity: str) -> None:
    """Mount a tmpfs of `capacity` at `directory`, unless one is there already."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(directory):
        return
    _mount("-t", "tmpfs", "-o", f"size={size_bytes(capacity)},mode=0755", "tmpfs", str(directory))


def expand(directory: Path, capacity: str) -> None:
    """Grow the tmpfs at `directory` to `capacity`, online; nothing when it is not mounted
    (the next `stage` mounts it at the volume's new capacity)."""
    if os.path.ismount(directory):
        _mount("-o", f"remount,size={size_bytes(capacity)}", str(directory))


def unstage(directory: Path) -> None:
    """Unmount the tmpfs at `directory` (its contents go with it)."""
    if os.path.ismount(directory):
        done = subprocess.run(
            ["umount", "--lazy", str(directory)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise DiskError(f"umount {directory}: {done.stderr.strip()}")
