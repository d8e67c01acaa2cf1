"""Crunchy Data's `/opt/crunchy/bin/pgbackrest`, as the process node runs it.

PGO's backup Jobs run the `crunchy-pgbackrest` image with that command: a small Go program of
Crunchy's containers repository (`cmd/pgbackrest/main.go`) that runs pgBackRest in another pod,
the repository host, rather than in the Job. The process node has no such binary (it runs no
image, see `images`), so this module stands in for it: `python -m
reconciler_envtest.crunchy_pgbackrest`, with the Job's environment.

- `NAMESPACE` and `COMMAND` (`backup`, `info` or `stanza-create`) are required;
  `COMMAND_OPTS` are pgBackRest's options, as shell words (`--stanza=db --repo=1`).
- `SELECTOR` is a label selector that must match exactly one pod in `NAMESPACE`; without it,
  `PODNAME` names the pod. `CONTAINER` is the container to run in (`database` by default).
- `COMPARE_HASH` (parsed as Go's `strconv.ParseBool`; anything else is false): run only when
  the pgBackRest configuration here and there is the same (see `hash_script`).

The pod is found and the command run with the pod's service account, through `pods/exec`:
`Client.from_kubeconfig(None)` loads kubernetes_asyncio's in-cluster configuration
(`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the token and `ca.crt` in
`/var/run/secrets/kubernetes.io/serviceaccount`), and only without it a kubeconfig. What the
command writes goes to this process's stdout and stderr, once it has ended, and its exit code
is this process's. Any other failure (a missing variable, no pod or several, an unreadable
configuration, a refused exec) is one line on stderr and exit code 1.

Where this differs from Crunchy's binary: its output is written as it is, not logged as
`output=[...]`, and a failing command gives its own exit code rather than 1; the settings for
PGO v4's S3 and GCS repositories (`PGBACKREST_REPO1_TYPE`, `PGHA_PGBACKREST_LOCAL_*`) are not
read, as PGO v5 sets none; the hash names files by their path relative to the configuration
directory, not by their absolute path.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

import aiohttp

from reconciler.runtime import podexec
from reconciler.runtime.client import ApiError, Client
from reconciler.runtime.resources import PODS

CONF_DIR = "/etc/pgbackrest/conf.d"
COMMANDS = ("backup", "info", "stanza-create")
DEFAULT_CONTAINER = "database"
USER_AGENT = "crunchy-pgbackrest"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# A backup takes as long as it takes: the Job's own deadline, if any, is what bounds it.
EXEC_TIMEOUT = 7 * 24 * 3600.0

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


class JobError(Exception):
    """The command cannot run; the message says why."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the Job's environment asks for."""

    namespace: str
    command: str
    command_opts: str
    container: str
    selector: str
    pod_name: str
    compare_hash: bool

    @property
    def pgbackrest(self) -> str:
        """The pgBackRest command line, as shell text: `pgbackrest backup --stanza=db`."""
        return " ".join(["pgbackrest", self.command, self.command_opts]).rstrip()


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise JobError(f"required environment variable {name} is not set")
    return value


def settings(env: Mapping[str, str]) -> Settings:
    """The settings in `env`; `JobError` names what is missing or wrong."""
    namespace = _required(env, "NAMESPACE")
    command = _required(env, "COMMAND")
    if command not in COMMANDS:
        raise JobError(f"unsupported COMMAND {command!r}: expected one of {', '.join(COMMANDS)}")
    selector = env.get("SELECTOR", "").strip()
    pod_name = env.get("PODNAME", "").strip()
    if not selector and not pod_name:
        raise JobError(
            "required environment variable SELECTOR is not set, nor PODNAME: one of them names "
            "the pod to run pgBackRest in"
        )
    return Settings(
        namespace=namespace,
        command=command,
        command_opts=env.get("COMMAND_OPTS", "").strip(),
        container=env.get("CONTAINER", "").strip() or DEFAULT_CONTAINER,
        selector=selector,
        pod_name="" if selector else pod_name,
        compare_hash=env.get("COMPARE_HASH", "").strip() in _TRUE,
    )


# A bash function printing the hash of the configuration directory named by its argument; run
# in a subshell, so its options, locale and directory do not leak into the caller.
_HASH_FUNCTION = r"""
config_hash() (
	set -o pipefail
	shopt -s globstar nullglob
	LC_ALL=C
	cd -- "$1" || exit
	files=(**)
	for i in "${!files[@]}"; do
		[[ -f ${files[i]} ]] || unset -v 'files[i]'
	done
	if ((${#files[@]})); then sha1sum -- "${files[@]}"; fi | sha1sum | cut -d ' ' -f 1
)
"""

# The end of the check in the pod, with the Job's hash in `hash` and the pod's in `local_hash`.
_COMPARE = r"""if [[ "$local_hash" != "$hash" ]]; then
	printf >&2 'hash %s does not match local hash %s\n' "$hash" "$local_hash"
	exit 1
fi
"""


def hash_script(conf_dir: str = CONF_DIR) -> str:
    """A bash script printing the hash of the pgBackRest configuration in `conf_dir`.

    The hash is Crunchy's: the SHA-1 of the `sha1sum` lines of the regular files that bash's
    `**` yields with `globstar` (files are named relative to `conf_dir` here, where Crunchy's
    are absolute). That is, every file whose path has no part starting with a dot, found by
    descending real directories but not symbolic links to directories; symbolic links to files
    count as their target's content. Names are sorted bytewise (`LC_ALL=C`). No files hash
    as the empty input.

    In a projected volume (a kubelet's layout: the files in a timestamped `..2026_...`
    directory, a `..data` link to it, and one link `name -> ..data/name` per top-level
    entry), that is the files projected at the top level, by content: the `..` entries are
    hidden, and so the same contents hash the same whatever the timestamp or the layout. Files
    projected under a subdirectory (PGO's `~postgres-operator/` client certificates) are
    behind a link to a directory and do not count, as in Crunchy's image. That matters: the
    client key is readable only by root and the pod's fsGroup, which the backup Job's user
    lacks, so a hash reading it could not be computed in the Job.

    A file that cannot be read fails the script (status 1, `sha1sum`'s message on stderr),
    rather than hashing what could be read.
    """
    return _HASH_FUNCTION + f"config_hash {shlex.quote(conf_dir)}\n"


def remote_script(settings: Settings, conf_dir: str = CONF_DIR) -> str:
    """The bash script run in the pod, given the Job's hash as `$1`: it computes the hash of
    the pod's configuration and runs pgBackRest only when both are the same; otherwise it says
    `hash <Job's> does not match local hash <pod's>` and exits 1.

    `COMMAND_OPTS` are part of the script's text, so bash splits and unquotes them, as with
    Crunchy's binary."""
    return (
        _HASH_FUNCTION
        + 'declare -r hash="$1"\n'
        + f'local_hash="$(config_hash {shlex.quote(conf_dir)})"\n'
        + _COMPARE
        + f"exec {settings.pgbackrest}\n"
    )


def exec_argv(settings: Settings, digest: str | None, conf_dir: str = CONF_DIR) -> list[str]:
    """The command run in the pod: the check of `digest` (the Job's hash) then pgBackRest, or
    pgBackRest alone when `digest` is None."""
    if digest is None:
        return ["bash", "-ceu", "--", f"exec {settings.pgbackrest}"]
    return ["bash", "-ceu", "--", remote_script(settings, conf_dir), "-", digest]


def local_hash(conf_dir: str = CONF_DIR) -> str:
    """The hash of this container's configuration, by `hash_script`; `JobError` if it fails."""
    result = subprocess.run(
        ["bash", "-ceu", "--", hash_script(conf_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    digest = result.stdout.decode().strip()
    if result.returncode != 0 or not digest:
        reason = result.stderr.decode().strip() or f"exit code {result.returncode}"
        raise JobError(
            f"unable to calculate the hash of the pgBackRest config {conf_dir}: {reason}"
        )
    return digest


async def find_pod(client: Client, settings: Settings) -> str:
    """The pod to run in: `PODNAME`, or the one pod that `SELECTOR` matches."""
    if not settings.selector:
        return settings.pod_name
    where = f"in namespace {settings.namespace!r} with selector {settings.selector!r}"
    try:
        found = await client.list(PODS, settings.namespace, label_selector=settings.selector)
    except (ApiError, aiohttp.ClientError, TimeoutError) as error:
        raise JobError(f"unable to list pods {where}: {error}") from error
    names = sorted(str(pod["metadata"]["name"]) for pod in found.items)
    if len(names) != 1:
        listed = f": {', '.join(names)}" if names else ""
        raise JobError(f"found {len(names)} pods {where}, but expected exactly one{listed}")
    return names[0]


async def run(
    client: Client,
    settings: Settings,
    *,
    conf_dir: str = CONF_DIR,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
) -> int:
    """Run the command in its pod, writing its output to `stdout` and `stderr` (this process's
    by default); its exit code. `JobError` when it cannot run."""
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    pod = await find_pod(client, settings)
    digest = await asyncio.to_thread(local_hash, conf_dir) if settings.compare_hash else None
    err.write(
        f"crunchy-pgbackrest: running [{settings.pgbackrest}] in pod "
        f"{settings.namespace}/{pod}, container {settings.container}\n".encode()
    )
    err.flush()
    argv = exec_argv(settings, digest, conf_dir)
    try:
        completed = await podexec.run(
            client, settings.namespace, pod, settings.container, argv, timeout=EXEC_TIMEOUT
        )
    except (podexec.ExecError, ApiError, aiohttp.ClientError, TimeoutError) as error:
        raise JobError(
            f"unable to exec in pod {settings.namespace}/{pod}, container "
            f"{settings.container}: {error}"
        ) from error
    out.write(completed.stdout)
    out.flush()
    err.write(completed.stderr)
    err.flush()
    return completed.exit_code


async def main(env: Mapping[str, str]) -> int:
    """The whole program: the exit code for `env`."""
    try:
        wanted = settings(env)
        try:
            client = await Client.from_kubeconfig(None, user_agent=USER_AGENT)
        except Exception as error:
            raise JobError(
                "unable to load the in-cluster configuration (KUBERNETES_SERVICE_HOST and _PORT, "
                f"{SERVICE_ACCOUNT}/token and ca.crt) or a kubeconfig: {error}"
            ) from error
        async with client:
            return await run(client, wanted)
    except JobError as error:
        print(f"crunchy-pgbackrest: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(os.environ)))
