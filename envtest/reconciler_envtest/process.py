"""Child processes of the control plane: started with a log file, stopped without leftovers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

STOP_TIMEOUT = 20.0


class ProcessFailedError(RuntimeError):
    """A control-plane process exited or never became healthy."""


# Listening ports come from below the kernel's ephemeral range: a port the kernel hands out
# (bind to port 0) is free only until it picks the same one as the local end of some outgoing
# connection (there are thousands of those to the API server), and the listener then fails with
# "address already in use".
_LISTEN_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1, outside the ephemeral range, that nothing is bound to now and
    that this process has not handed out before."""
    low = _ephemeral_low()
    candidates = [p for p in _LISTEN_PORTS if p < low and p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {_LISTEN_PORTS} below the ephemeral range ({low})")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class Process:
    """One long-running child: its command, its log, and its pid file in the run directory."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        run_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **env} if env else None  # None: this process's environment
        self.log_path = run_dir / f"{name}.log"
        self.pid_path = run_dir / f"{name}.pid"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The pid while the process runs."""
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start the process in its own session, appending its output to the log file."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        self.pid_path.write_text(str(self._process.pid))

    async def wait_healthy(
        self, check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1
    ) -> None:
        """Poll `check` until it passes; fail early, with the log's tail, if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._process is None or self._process.returncode is not None:
                raise ProcessFailedError(
                    f"{self.name} exited early; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, TimeoutError):
                if await check():
                    return
            if loop.time() > deadline:
                raise ProcessFailedError(
                    f"{self.name} was not healthy after {timeout:.0f}s; last lines of "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(interval)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, then SIGKILL it if it outlives `timeout`."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        self._process = None
        self.pid_path.unlink(missing_ok=True)


def kill_recorded(run_dir: Path, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the processes whose pid files are in `run_dir` (from another invocation).

    Used by `envtest down`, which runs in a different process than `envtest up`.
    Returns the names of the processes that were still running.
    """
    stopped = []
    for pid_file in sorted(run_dir.glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            pid_file.unlink(missing_ok=True)
            continue
        if _signal_group(pid, signal.SIGTERM):
            stopped.append(pid_file.stem)
        pid_file.unlink(missing_ok=True)
        _wait_gone(pid, timeout)
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return ""
