"""The e2e tier's sandbox: a network and mount namespace of the run's own.

`reconciler-envtest isolated -- CMD` runs CMD in new network and mount namespaces with only a
loopback interface. The control plane, the operator, the tests and the pods (each in a network
namespace of its own, on a bridge created in this one) live there, so no address outside what
the run created can be contacted, and the run's `/etc/hosts` (the node's names) is its own.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

MARKER = "RECONCILER_ISOLATED"


class NotIsolatedError(RuntimeError):
    """The process node was asked for outside an isolated run."""


def _namespaces() -> str:
    return ",".join(os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "mnt"))


def is_isolated() -> bool:
    """Whether this process runs under `run_isolated`, in namespaces other than its caller's.

    The caller records its own namespaces in the environment (a process may not read those of
    PID 1 here), so both must differ from them.
    """
    outer = os.environ.get(MARKER, "").split(",")
    inner = _namespaces().split(",")
    return len(outer) == 2 and all(o != i for o, i in zip(outer, inner, strict=True))


def require() -> None:
    """Fail with the fix unless this process runs isolated."""
    if not is_isolated():
        raise NotIsolatedError(
            "the process node needs network and mount namespaces of the run's own: run the "
            "command as `reconciler-envtest isolated -- <command>` (as root), e.g. `make e2e`"
        )


def isolated_argv(argv: Sequence[str]) -> list[str]:
    """The command running `argv` in new network and mount namespaces (the same process:
    every step execs the next)."""
    inside = f'ip link set lo up && exec env {MARKER}={_namespaces()} "$@"'
    command = ["unshare", "--net", "--mount", "--propagation", "private", "--"]
    return [*command, "sh", "-c", inside, "isolated", *argv]


def entering_argv(pid: int, argv: Sequence[str]) -> list[str]:
    """The command running `argv` in the namespaces of the isolated process `pid`."""
    marker = f"{MARKER}={_namespaces()}"
    here = f"--wd={os.getcwd()}"  # entering a mount namespace would start from its root
    return ["nsenter", "-t", str(pid), "-n", "-m", here, "--", "env", marker, *argv]


def run_isolated(argv: Sequence[str]) -> int:
    """Run `argv` in new network and mount namespaces; its exit code."""
    if os.geteuid() != 0:
        print("reconciler-envtest isolated: must run as root (it creates namespaces)")
        return 2
    return subprocess.call(isolated_argv(argv))
