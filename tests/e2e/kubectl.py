"""`kubectl` against the session's control plane, as a user runs it: with pipes, or on a
terminal of its own (`-t` needs one), or left running (port-forward)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass

from reconciler_envtest import binaries
from reconciler_envtest.controlplane import ControlPlane


@dataclass(frozen=True, slots=True)
class Result:
    """A finished kubectl: exit code and output."""

    code: int
    stdout: str
    stderr: str


def _argv(plane: ControlPlane, args: tuple[str, ...]) -> list[str]:
    bin_dir = binaries.locate()
    assert bin_dir is not None, "the control plane runs, so its binaries exist"
    return [str(bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}", *args]


async def kubectl(
    plane: ControlPlane, *args: str, stdin: bytes | None = None, timeout: float = 60.0
) -> Result:
    """Run kubectl to its end."""
    process = await asyncio.create_subprocess_exec(
        *_argv(plane, args),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Result(process.returncode or 0, out.decode(), err.decode())


async def kubectl_on_terminal(plane: ControlPlane, *args: str, timeout: float = 60.0) -> Result:
    """Run kubectl with a terminal as its standard streams, as in a user's shell."""
    controller, terminal = os.openpty()
    # A window of a user's usual size: kubectl passes it on, and a program on a terminal of
    # no size (psql) pages even one line of output.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        process = await asyncio.create_subprocess_exec(
            *_argv(plane, args), stdin=terminal, stdout=terminal, stderr=terminal
        )
    finally:
        os.close(terminal)
    output = bytearray()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(controller, "rb", 0)
    )
    try:
        async with asyncio.timeout(timeout):
            with contextlib.suppress(OSError):  # EIO once kubectl closed the terminal
                while chunk := await reader.read(4096):
                    output += chunk
            code = await process.wait()
    finally:
        transport.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Result(code, output.decode(errors="replace"), "")


@contextlib.asynccontextmanager
async def port_forward(
    plane: ControlPlane, namespace: str, target: str, port: int
) -> AsyncIterator[int]:
    """`kubectl port-forward <target> :<port>` running; the local port it listens on."""
    process = await asyncio.create_subprocess_exec(
        *_argv(plane, ("-n", namespace, "port-forward", target, f":{port}")),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            # "Forwarding from 127.0.0.1:43721 -> 5432"
            line = (await process.stdout.readline()).decode()
        if not line.startswith("Forwarding from 127.0.0.1:"):
            assert process.stderr is not None
            raise AssertionError(
                f"kubectl port-forward: {line}{(await process.stderr.read()).decode()}"
            )
        yield int(line.split(":")[1].split()[0])
    finally:
        process.terminate()
        await process.wait()
