"""Containers as processes: a sandbox per pod, a mount namespace and a cgroup per container.

A pod's sandbox is a sleeping process in new network and UTS namespaces (a kubelet's "pause"
container); its containers join those namespaces. Each container gets a mount namespace of its
own whose root is this machine's root filesystem under a private copy-on-write layer (overlayfs
with a tmpfs upper), with the pod's volumes mounted at the paths of the pod spec; it then runs
as the image's user, chrooted there. Each container has a cgroup (v2), so stopping it stops
every process it started, as a container runtime does; there is no PID namespace, so processes
of other pods are visible (the pods here set `shareProcessNamespace` anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shlex
import signal
import struct
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup/unified")
# The memory controller is cgroup v1's here: a container with a memory limit is also placed in
# a memory cgroup of the same name, which the kernel's OOM killer acts on, as under a kubelet.
MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
_SYSTEM_MOUNTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount of a container: a directory (or file) of the node at `target`."""

    source: str  # a path on the node, or "tmpfs" for a memory-backed emptyDir
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What a container runs, where, and as whom."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    mounts: Sequence[Mount]
    uid: int
    gid: int
    groups: Sequence[int]
    working_dir: str = "/"
    read_only_root: bool = False
    links: Mapping[str, str] | None = None  # container path -> node path, made as symlinks
    stdin: bool = False  # the container's `stdin`: its standard input stays open for attach
    tty: bool = False  # the container's `tty`: it runs on a terminal
    memory_limit: int | None = None  # bytes: `resources.limits.memory`


@dataclass
class Stdio:
    """A process's standard streams as the node holds them: `stdout` carries the terminal's
    output when `terminal` is set (a terminal has no separate stderr)."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader | None
    stdin: asyncio.StreamWriter | None
    terminal: int | None = None  # the terminal's controlling side (a file descriptor)
    # The terminal's read transport: closed with the rest (pipes belong to the process).
    transports: list[asyncio.BaseTransport] = field(default_factory=list)

    def resize(self, width: int, height: int) -> None:
        """Set the terminal's size, as `kubectl exec -t` reports the user's window."""
        if self.terminal is not None:
            size = struct.pack("HHHH", height, width, 0, 0)
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.terminal, termios.TIOCSWINSZ, size)

    def close(self) -> None:
        """Close the node's ends (the process keeps running if it ignores that)."""
        if self.stdin is not None:
            self.stdin.close()
        for transport in self.transports:
            transport.close()
        if self.terminal is not None:
            with contextlib.suppress(OSError):
                os.close(self.terminal)
            self.terminal = None


async def _spawn(
    argv: Sequence[str], *, stdin: bool, tty: bool
) -> tuple[asyncio.subprocess.Process, Stdio]:
    """Start `argv` with pipes, or on a new terminal (then it leads a session of its own, with
    the terminal as its controlling terminal, as a container runtime's tty)."""
    loop = asyncio.get_running_loop()
    if not tty:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=_NODE_ENV,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        return process, Stdio(process.stdout, process.stderr, process.stdin)
    controller, terminal = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            "setsid", "--ctty", "--", *argv,
            env=_NODE_ENV, stdin=terminal, stdout=terminal, stderr=terminal,
        )  # fmt: skip
    finally:
        os.close(terminal)
    output = asyncio.StreamReader()
    reading, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(output), os.fdopen(os.dup(controller), "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(controller), "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop) if stdin else None
    if writer is None:
        transport.close()
    return process, Stdio(output, None, writer, controller, [reading])


async def start_sandbox(hostname: str, log: Path) -> asyncio.subprocess.Process:
    """The pod's sandbox: new network and UTS namespaces, held by a sleeping process."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--uts", "--",
            "sh", "-c", 'hostname "$1" && exec sleep infinity', "sandbox", hostname,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    # The process exists before it has left our namespaces: wait until it has.
    ours = os.readlink("/proc/self/ns/net")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while os.readlink(f"/proc/{process.pid}/ns/net") == ours:
        if process.returncode is not None or loop.time() > deadline:
            raise RuntimeError(f"the pod sandbox did not start; see {log}")
        await asyncio.sleep(0.01)
    return process


def within_root(path: str) -> str:
    """`path` with the symbolic links of its existing part resolved, as seen from inside the
    container (whose root is this machine's): `/var/run/x` is `/run/x` on Debian. Mounting at
    the unresolved path would follow an absolute link out of the container's root."""
    return os.path.realpath(path)


def launch_script(spec: ContainerSpec, layer: Path, cgroup: Path, hosts: Path) -> str:
    """The shell program that sets up the container's filesystem, then becomes its command.

    It runs as root inside the container's new mount namespace; its last step execs the
    command, so the process the node started is the container's main process.
    """
    q = shlex.quote
    root = layer / "root"
    lines = [
        "set -eu",
        f"echo $$ > {q(str(cgroup / 'cgroup.procs'))}",
        *(
            [f"echo $$ > {q(str(memory_cgroup(cgroup) / 'cgroup.procs'))}"]
            if spec.memory_limit
            else []
        ),
        "mount --make-rprivate /",
        f"mount -t tmpfs -o mode=0755 layer {q(str(layer))}",
        f"mkdir {q(str(layer / 'upper'))} {q(str(layer / 'work'))} {q(str(root))}",
        f"mount -t overlay overlay -o lowerdir=/,upperdir={layer / 'upper'},"
        f"workdir={layer / 'work'} {q(str(root))}",
    ]
    for path in _SYSTEM_MOUNTS:
        lines.append(f"mount --rbind {path} {q(str(root) + path)}")
    lines.append(f"mount --bind {q(str(hosts))} {q(str(root / 'etc/hosts'))}")
    for target, source in sorted((spec.links or {}).items()):
        inside = q(str(root) + within_root(target))
        lines.append(f"mkdir -p $(dirname {inside}) && ln -sfn {q(source)} {inside}")
    for mount in spec.mounts:
        inside = q(str(root) + within_root(mount.target))
        if mount.source == "tmpfs":
            lines += [f"mkdir -p {inside}", f"mount -t tmpfs -o mode=1777 tmpfs {inside}"]
            continue
        kind = "-d" if Path(mount.source).is_dir() else "-f"
        lines.append(
            f"[ -e {inside} ] || {{ mkdir -p $(dirname {inside}); "
            f"if [ {kind} = -d ]; then mkdir {inside}; else : > {inside}; fi; }}"
        )
        lines.append(f"mount --bind {q(mount.source)} {inside}")
        if mount.read_only:
            lines.append(f"mount -o remount,bind,ro {inside}")
    if spec.read_only_root:
        lines.append(f"mount -o remount,bind,ro {q(str(root))}")
    groups = ",".join(str(g) for g in spec.groups) or str(spec.gid)
    lines.append(
        f"exec chroot --userspec={spec.uid}:{spec.gid} --groups={groups} {q(str(root))} "
        f"env -i --chdir={q(spec.working_dir)} {_assignments(spec.env)} "
        + " ".join(q(a) for a in spec.argv)
    )
    return "\n".join(lines) + "\n"


def _assignments(env: Mapping[str, str]) -> str:
    return " ".join(shlex.quote(f"{key}={value}") for key, value in sorted(env.items()))


# The tools that set a container up run on the node's root, with the node's environment only:
# the container's (LD_PRELOAD of a library at an image path, for one) applies to its command.
_NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


async def start_container(
    spec: ContainerSpec, sandbox_pid: int, directory: Path, hosts: Path
) -> tuple[asyncio.subprocess.Process, Path, Stdio]:
    """Start the container in the sandbox's namespaces; its process, cgroup and streams (the
    launch program's own errors, a failed mount say, come out on its stderr like the
    command's)."""
    layer = directory / "layer"
    layer.mkdir(parents=True, exist_ok=True)
    cgroup = create_cgroup(directory, spec.memory_limit)
    script = launch_script(spec, layer, cgroup, hosts)
    namespaces = [f"--net=/proc/{sandbox_pid}/ns/net", f"--uts=/proc/{sandbox_pid}/ns/uts"]
    argv = [
        "nsenter", *namespaces, "--",
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", script,
    ]  # fmt: skip
    process, stdio = await _spawn(argv, stdin=spec.stdin, tty=spec.tty)
    return process, cgroup, stdio


def create_cgroup(directory: Path, memory_limit: int | None = None) -> Path:
    """A fresh cgroup for one run of a container (named after its directory), and its memory
    cgroup with the limit when there is one."""
    relative = str(directory).strip("/").replace("/", "-")
    cgroup = CGROUP_ROOT / "envtest" / relative
    if cgroup.exists():
        kill_cgroup(cgroup)
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    cgroup.mkdir(parents=True, exist_ok=True)
    if memory_limit:
        memory = memory_cgroup(cgroup)
        with contextlib.suppress(OSError):
            memory.rmdir()
        memory.mkdir(parents=True, exist_ok=True)
        (memory / "memory.limit_in_bytes").write_text(str(memory_limit))
    return cgroup


def memory_cgroup(cgroup: Path) -> Path:
    """The memory cgroup that goes with a container's cgroup."""
    return MEMORY_ROOT / cgroup.relative_to(CGROUP_ROOT)


def oom_killed(cgroup: Path) -> bool:
    """Whether the kernel killed a process of the container for exceeding its memory limit."""
    try:
        control = (memory_cgroup(cgroup) / "memory.oom_control").read_text()
    except OSError:
        return False
    counts = dict(line.split() for line in control.splitlines() if line.strip())
    return int(counts.get("oom_kill", "0")) > 0


def cgroup_pids(cgroup: Path) -> list[int]:
    """The processes in a container's cgroup."""
    try:
        return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def signal_cgroup(cgroup: Path, signum: int) -> None:
    """Send `signum` to every process of the container."""
    for pid in cgroup_pids(cgroup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def kill_cgroup(cgroup: Path) -> None:
    """SIGKILL every process of the container at once (cgroup.kill)."""
    with contextlib.suppress(FileNotFoundError):
        (cgroup / "cgroup.kill").write_text("1")


async def remove_cgroup(cgroup: Path, timeout: float = 10.0) -> None:
    """Kill what is left in the cgroup and remove it once empty."""
    kill_cgroup(cgroup)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # A cgroup announces emptiness only through inotify on cgroup.events: polling is simpler.
    while cgroup_pids(cgroup) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    with contextlib.suppress(OSError):
        cgroup.rmdir()  # noqa: ASYNC240 (a cgroup directory: no disk I/O)
    with contextlib.suppress(OSError):
        memory_cgroup(cgroup).rmdir()


def _exec_argv(main_pid: int, spec: ContainerSpec, argv: Sequence[str]) -> list[str]:
    """`argv` run inside a running container (its namespaces and root), as its user, with its
    environment."""
    groups = ",".join(str(g) for g in spec.groups) or str(spec.gid)
    return [
        "nsenter", "-t", str(main_pid), "-m", "-n", "-u", "-r", "-w", "--",
        "setpriv", f"--reuid={spec.uid}", f"--regid={spec.gid}", f"--groups={groups}", "--",
        "env", "-i", *(f"{k}={v}" for k, v in sorted(spec.env.items())), *argv,
    ]  # fmt: skip


async def exec_in(
    main_pid: int, spec: ContainerSpec, argv: Sequence[str], timeout: float
) -> tuple[int, bytes]:
    """Run `argv` in a running container; its exit code and output (a probe's)."""
    process = await asyncio.create_subprocess_exec(
        *_exec_argv(main_pid, spec, argv),
        env=_NODE_ENV, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return -1, b"timed out"
    return process.returncode or 0, output


async def exec_session(
    main_pid: int, spec: ContainerSpec, argv: Sequence[str], *, stdin: bool, tty: bool
) -> tuple[asyncio.subprocess.Process, Stdio]:
    """Start `argv` in a running container with its streams held by the node (`kubectl exec`)."""
    return await _spawn(_exec_argv(main_pid, spec, argv), stdin=stdin, tty=tty)
