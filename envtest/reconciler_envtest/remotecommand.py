"""`exec` and `attach` as a kubelet serves them to the API server: the process's standard
streams carried over SPDY streams or WebSocket channels, its exit code in the error stream.

Protocols `v4.channel.k8s.io` and `v5.channel.k8s.io` (v5 adds, over WebSocket, a message that
closes one channel: how a client ends the command's standard input). The API server speaks
SPDY to kubelets, translating `kubectl`'s WebSockets (v5); it passes other WebSocket clients
(v4, such as the Python clients) through to the kubelet as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSMsgType, web

from reconciler.runtime.client import JSON
from reconciler_envtest import spdy
from reconciler_envtest.containers import Stdio

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STREAM_TIMEOUT = 30.0  # how long a kubelet waits for the client's streams
_STDIN, _STDOUT, _STDERR, _ERROR, _RESIZE = range(5)
_CLOSE = 255


@dataclass(frozen=True, slots=True)
class Options:
    """What the client asked for: the kubelet's `input`, `output`, `error` and `tty`."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Options:
        """The options of an exec or attach request's query."""

        def flag(name: str) -> bool:
            return query.get(name, "") in ("1", "true")

        tty = flag("tty")
        # On a terminal, stderr is stdout: a kubelet ignores the stderr stream then.
        return cls(flag("input"), flag("output"), flag("error") and not tty, tty)


class Channels(Protocol):
    """The client's side of a session, whatever carries it."""

    async def read_stdin(self) -> bytes:
        """The next chunk of the client's standard input; b"" at its end."""

    async def write(self, channel: int, data: bytes) -> None:
        """Send `data` on the stdout or stderr channel."""

    def resizes(self) -> AsyncIterator[tuple[int, int]]:
        """The terminal sizes (width, height) the client reports."""

    async def finish(self, status: JSON) -> None:
        """Send the final status on the error channel and end the session."""


def exit_status(code: int) -> JSON:
    """The error stream's `Status` for a command that exited with `code`."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure(message: str) -> JSON:
    """The error stream's `Status` for a session that could not run (no such container...)."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}


async def serve(
    channels: Channels,
    options: Options,
    stdio: Stdio,
    done: asyncio.Future[int] | None,
    *,
    close_stdin: bool,
) -> None:
    """Copy the client's streams to the process and back until `done` gives its exit code
    (exec), or until the client leaves or the output ends (attach: `done` is None). With
    `close_stdin`, the end of the client's input closes the process's."""

    async def pump_in() -> None:
        while data := await channels.read_stdin():
            if stdio.stdin is None:
                continue
            stdio.stdin.write(data)
            await stdio.stdin.drain()
        if close_stdin and stdio.stdin is not None and stdio.terminal is None:
            stdio.stdin.close()  # the command sees the end of its input (a terminal has none)

    async def pump_out(reader: asyncio.StreamReader | None, channel: int) -> None:
        if reader is None:
            return
        with contextlib.suppress(OSError):  # a terminal whose last process left reads EIO
            while data := await reader.read(32 * 1024):
                await channels.write(channel, data)

    async def resize() -> None:
        async for width, height in channels.resizes():
            stdio.resize(width, height)

    background = [asyncio.create_task(resize())]
    if options.stdin:
        background.append(asyncio.create_task(pump_in()))
    outputs = asyncio.gather(
        pump_out(stdio.stdout if options.stdout else None, _STDOUT),
        pump_out(stdio.stderr if options.stderr else None, _STDERR),
    )
    try:
        if done is None:
            await outputs
            return
        code = await done
        # The output the process wrote before exiting still reaches the client.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(outputs), 5.0)
        await channels.finish(exit_status(code))
    finally:
        outputs.cancel()
        for task in background:
            task.cancel()
        await asyncio.gather(outputs, *background, return_exceptions=True)


# -- SPDY -----------------------------------------------------------------------------------


@dataclass
class SpdyChannels:
    """A session's streams over SPDY, named by their `streamType` header."""

    session: spdy.Session
    streams: dict[str, spdy.Stream] = field(default_factory=dict)

    @classmethod
    async def accept(cls, session: spdy.Session, options: Options) -> SpdyChannels:
        """Wait for the streams the options call for, as a kubelet does (error stream first)."""
        wanted = {"error"}
        wanted |= {"stdin"} if options.stdin else set()
        wanted |= {"stdout"} if options.stdout else set()
        wanted |= {"stderr"} if options.stderr else set()
        wanted |= {"resize"} if options.tty else set()
        channels = cls(session)
        async with asyncio.timeout(STREAM_TIMEOUT):
            while not wanted <= channels.streams.keys():
                stream = await session.accept()
                if stream is None:
                    raise ConnectionError("the client left before opening its streams")
                channels.streams[stream.headers.get("streamtype", "")] = stream
        return channels

    async def read_stdin(self) -> bytes:
        stream = self.streams.get("stdin")
        return await stream.read() if stream is not None else b""

    async def write(self, channel: int, data: bytes) -> None:
        await self.streams["stdout" if channel == _STDOUT else "stderr"].write(data)

    async def resizes(self) -> AsyncIterator[tuple[int, int]]:
        stream = self.streams.get("resize")
        if stream is None:
            return
        decoder, buffer = json.JSONDecoder(), ""
        while chunk := await stream.read():
            buffer += chunk.decode()
            while buffer.strip():
                try:
                    size, end = decoder.raw_decode(buffer.lstrip())
                except json.JSONDecodeError:
                    break  # an incomplete object: wait for the rest
                buffer = buffer.lstrip()[end:]
                yield int(size.get("Width", 0)), int(size.get("Height", 0))

    async def finish(self, status: JSON) -> None:
        with contextlib.suppress(ConnectionError):
            await self.streams["error"].write(json.dumps(status).encode())
        for stream in self.streams.values():
            with contextlib.suppress(ConnectionError):
                await stream.close()
        await self.session.close()


# -- WebSocket ------------------------------------------------------------------------------


class WebSocketChannels:
    """A session's channels over one WebSocket: each binary message starts with its channel."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self._sizes: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, data = message.data[0], message.data[1:]
            if channel == _STDIN and data:
                self._stdin.put_nowait(data)
            elif channel == _RESIZE:
                size = json.loads(data)
                self._sizes.put_nowait((int(size.get("Width", 0)), int(size.get("Height", 0))))
            elif channel == _CLOSE and data[:1] == bytes([_STDIN]):
                self._stdin.put_nowait(b"")
        self._stdin.put_nowait(b"")
        self._sizes.put_nowait(None)

    async def read_stdin(self) -> bytes:
        return await self._stdin.get()

    async def write(self, channel: int, data: bytes) -> None:
        await self.socket.send_bytes(bytes([channel]) + data)

    async def resizes(self) -> AsyncIterator[tuple[int, int]]:
        while (size := await self._sizes.get()) is not None:
            yield size

    async def finish(self, status: JSON) -> None:
        with contextlib.suppress(ConnectionError):
            await self.socket.send_bytes(bytes([_ERROR]) + json.dumps(status).encode())
        await self.socket.close()
        self._reader.cancel()
