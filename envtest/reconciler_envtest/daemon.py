"""`reconciler-envtest up/down/status`: a control plane that outlives the command starting it.

`up` starts a supervisor process (`envtest serve`) that owns the control plane and its node
agent, and returns once the supervisor reports the node Ready. `down` asks the supervisor to
stop everything, then removes any process still recorded in the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler_envtest import binaries, isolation, relay
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.process import alive, kill_recorded

_READY = "ready"
_FAILED = "failed"
_SUPERVISOR = "supervisor"
UP_TIMEOUT = 120.0


def up(run_dir: Path, *, process_node: bool = False) -> Path:
    """Start the control plane in the background; return the kubeconfig once the node is Ready.

    With `process_node`, pods run as processes and everything lives in namespaces of the
    supervisor's own: reach it through `enter(run_dir, argv)` (`reconciler-envtest exec`).
    """
    run_dir = run_dir.resolve()
    if not running(run_dir):
        _start(run_dir, process_node=process_node)
    if process_node:
        supervisor = int((run_dir / f"{_SUPERVISOR}.pid").read_text())
        write_kubectl(run_dir, relay.start(run_dir, supervisor))
    return run_dir / "kubeconfig"


def _start(run_dir: Path, *, process_node: bool) -> None:
    print(f"Control-plane binaries: {binaries.ensure()}", file=sys.stderr)
    run_dir.mkdir(parents=True, exist_ok=True)
    for marker in (_READY, _FAILED):
        (run_dir / marker).unlink(missing_ok=True)
    with (run_dir / f"{_SUPERVISOR}.log").open("ab") as log:
        command = [sys.executable, "-m", "reconciler_envtest", "serve", "--dir", str(run_dir)]
        if process_node:
            command = isolation.isolated_argv([*command, "--process-node"])
        supervisor = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (run_dir / f"{_SUPERVISOR}.pid").write_text(str(supervisor.pid))
    deadline = time.monotonic() + UP_TIMEOUT
    while not (run_dir / _READY).exists():
        if (run_dir / _FAILED).exists() or supervisor.poll() is not None:
            reason = (run_dir / _FAILED).read_text() if (run_dir / _FAILED).exists() else ""
            down(run_dir)
            raise RuntimeError(
                f"the control plane did not start: {reason or 'the supervisor exited'}; "
                f"logs are in {run_dir}"
            )
        if time.monotonic() > deadline:
            down(run_dir)
            raise TimeoutError(
                f"the control plane was not ready in {UP_TIMEOUT:.0f}s; see {run_dir}"
            )
        time.sleep(0.1)


def write_kubectl(run_dir: Path, kubeconfig: Path) -> Path:
    """`run_dir/bin/kubectl`: plain `kubectl` for the user's own shell (with `run_dir/bin` on
    PATH), with a kubeconfig that reaches the API server from there (see `relay`): so
    `kubectl port-forward` listens on the user's machine."""
    wrapper = run_dir / "bin" / "kubectl"
    wrapper.parent.mkdir(exist_ok=True)
    kubectl = [str(binaries.ensure() / "kubectl"), "--kubeconfig", str(kubeconfig)]
    command = " ".join(shlex.quote(word) for word in kubectl)
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def serve(run_dir: Path, *, process_node: bool = False) -> None:
    """Run the control plane in this process until SIGTERM or SIGINT (the supervisor's body)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        plane = ControlPlane(run_dir, process_node=process_node)
        try:
            await plane.start()
        except Exception as error:
            (run_dir / _FAILED).write_text(str(error))
            raise
        try:
            (run_dir / _READY).write_text(str(plane.kubeconfig))
            await stop.wait()
        finally:
            (run_dir / _READY).unlink(missing_ok=True)
            await plane.stop()

    asyncio.run(main())


def down(run_dir: Path) -> list[str]:
    """Stop the supervisor and everything it started; return the names of what was running."""
    run_dir = run_dir.resolve()
    stopped: list[str] = []
    pid_file = run_dir / f"{_SUPERVISOR}.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(_SUPERVISOR)
            deadline = time.monotonic() + 40
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        pid_file.unlink(missing_ok=True)
    # Whatever the supervisor could not stop (it was killed, say) is still recorded.
    stopped += kill_recorded(run_dir)
    (run_dir / _READY).unlink(missing_ok=True)
    return stopped


def enter(run_dir: Path, argv: list[str]) -> list[str]:
    """The command running `argv` beside the supervisor's control plane (its namespaces)."""
    pid_file = run_dir.resolve() / f"{_SUPERVISOR}.pid"
    if not pid_file.exists():
        raise RuntimeError(f"no control plane runs in {run_dir}: start it with `make demo`")
    return isolation.entering_argv(int(pid_file.read_text()), argv)


def running(run_dir: Path) -> bool:
    """Whether a supervisor of `run_dir` is alive and reported the control plane ready."""
    pid_file = run_dir / f"{_SUPERVISOR}.pid"
    if not pid_file.exists() or not (run_dir / _READY).exists():
        return False
    return alive(int(pid_file.read_text()))
