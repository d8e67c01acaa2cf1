"""`portForward` as a kubelet serves it (`portforward.k8s.io` over SPDY): for each connection
the client opens an error stream and a data stream with the same `requestID` and `port`; the
node connects to that port on the pod's loopback, inside the pod's network namespace (where a
server listening on 127.0.0.1 only is reachable too, as with a kubelet), and copies bytes both
ways. What fails is written as text on the error stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable

from reconciler_envtest import spdy

PROTOCOL = "portforward.k8s.io"
_CLONE_NEWNET = 0x40000000


def connect_in_namespace(pid: int, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:`port` in the network namespace of process `pid`.

    A socket belongs to the namespace it was created in, whatever the thread does next: a
    thread of its own enters the namespace, connects and leaves it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                result.append(OSError(ctypes.get_errno(), "setns into the pod's network failed"))
                return
            try:
                result.append(socket.create_connection(("127.0.0.1", port), timeout))
            except OSError as error:
                result.append(error)
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:  # never leave a thread behind in a pod
                    os._exit(70)
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=run, name=f"portforward-{pid}-{port}")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    result[0].setblocking(False)
    return result[0]


async def serve(session: spdy.Session, sandbox_pid: Callable[[], int | None]) -> None:
    """Serve one port-forward session until the client leaves."""
    pending: dict[str, dict[str, spdy.Stream]] = {}
    tasks: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.accept()) is not None:
            request = stream.headers.get("requestid", "")
            pair = pending.setdefault(request, {})
            pair[stream.headers.get("streamtype", "")] = stream
            if {"error", "data"} <= pair.keys():
                del pending[request]
                task = asyncio.create_task(_forward(pair, sandbox_pid()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _forward(pair: dict[str, spdy.Stream], pid: int | None) -> None:
    data, error = pair["data"], pair["error"]
    port_text = data.headers.get("port", "")
    try:
        if not port_text.isdigit():
            raise ValueError(f"invalid port {port_text!r}")  # noqa: TRY301
        if pid is None:
            raise OSError("the pod is not running")  # noqa: TRY301
        sock = await asyncio.to_thread(connect_in_namespace, pid, int(port_text))
    except (OSError, ValueError) as failure:
        message = f"error forwarding port {port_text} to pod: {failure}"
        with contextlib.suppress(ConnectionError):
            await error.write(message.encode())
            await error.close()
        data.reset()
        return
    reader, writer = await asyncio.open_connection(sock=sock)

    async def upstream() -> None:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def downstream() -> None:
        while chunk := await reader.read(64 * 1024):
            await data.write(chunk)
        await data.close()

    try:
        await asyncio.gather(upstream(), downstream())
    except (ConnectionError, OSError):
        data.reset()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await error.close()
