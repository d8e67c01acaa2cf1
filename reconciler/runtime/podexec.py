"""A command in a pod's container through the API server's `pods/exec`, as `kubectl exec` runs
it (WebSocket, `v5.channel.k8s.io`): how the operator runs pgBackRest's commands in its pods,
and how the tests look inside them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiohttp import WSMsgType

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import PODS

_STDIN, _STDOUT, _STDERR, _ERROR = range(4)
_CLOSE = 255


class ExecError(RuntimeError):
    """The command could not run (no such pod or container, not running...)."""


@dataclass(frozen=True, slots=True)
class Completed:
    """A command that ran: its exit code and output."""

    exit_code: int
    stdout: bytes
    stderr: bytes


def exit_code(status: JSON) -> int:
    """The exit code in the error channel's `Status`; `ExecError` when the command did not run."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause["message"])
    raise ExecError(status.get("message") or json.dumps(status))


async def run(
    client: Client,
    namespace: str,
    pod: str,
    container: str,
    argv: list[str],
    *,
    stdin: bytes | None = None,
    timeout: float = 60.0,
    protocol: str = "v5.channel.k8s.io",
) -> Completed:
    """Run `argv` in the container, feeding it `stdin` if given; `protocol` v4 reaches the
    kubelet as a WebSocket, v5 through the API server's translation to SPDY."""
    params = [("container", container), ("stdout", "1"), ("stderr", "1")]
    params += [("stdin", "1")] if stdin is not None else []
    params += [("command", arg) for arg in argv]
    output: dict[int, bytearray] = {_STDOUT: bytearray(), _STDERR: bytearray()}
    status: JSON | None = None
    path = PODS.path(namespace, pod, "exec")
    async with (
        asyncio.timeout(timeout),
        client.websocket(path, params=params, protocols=[protocol]) as socket,
    ):
        if stdin is not None:
            await socket.send_bytes(bytes([_STDIN]) + stdin)
            if protocol.startswith("v5"):
                await socket.send_bytes(bytes([_CLOSE, _STDIN]))
        async for message in socket:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, data = message.data[0], message.data[1:]
            if channel in output:
                output[channel] += data
            elif channel == _ERROR and data:
                status = json.loads(data)
    if status is None:
        raise ExecError(f"exec in {namespace}/{pod}: the session ended without a status")
    return Completed(exit_code(status), bytes(output[_STDOUT]), bytes(output[_STDERR]))
