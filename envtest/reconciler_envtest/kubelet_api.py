"""The kubelet's HTTPS API on the process node: what the API server calls for `kubectl logs`,
`exec`, `attach` and `port-forward`.

Served over TLS with a certificate of the run's CA; a caller must present a client certificate
of that CA (a TLS handshake without one fails) whose name is the API server's kubelet client:
nobody else reaches the pods through it. Implemented: `/healthz`, `/containerLogs`, `/exec`,
`/attach`, `/portForward` (SPDY/3.1, and WebSockets for exec and attach). Not implemented:
`/metrics`, `/stats`, `/pods`, `/runningpods`, `/configz`, `/checkpoint`, `/run`, `/debug`:
they answer 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Protocol

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from reconciler_envtest import container_logs, portforward, remotecommand, spdy
from reconciler_envtest.kubelet import Kubelet

log = structlog.get_logger(__name__)

API_SERVER_CLIENT = "kube-apiserver-kubelet-client"


def tls_context(certificate: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """Serving TLS that asks every caller for a client certificate of `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(str(certificate), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class KubeletAPI:
    """The HTTPS server; `port` is known once started."""

    def __init__(self, kubelet: Kubelet, *, host: str, tls: ssl.SSLContext) -> None:
        self.kubelet = kubelet
        self.host = host
        self.tls = tls
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free port of `host`."""
        app = web.Application(middlewares=[_only_the_api_server])
        pod = "{namespace}/{pod}"
        app.router.add_get("/healthz", _healthz)
        app.router.add_get(f"/containerLogs/{pod}/{{container}}", self._logs)
        for verb, handler in (("exec", self._exec), ("attach", self._attach)):
            for path in (f"/{verb}/{pod}/{{container}}", f"/{verb}/{pod}/{{uid}}/{{container}}"):
                app.router.add_route("*", path, handler)
        for path in (f"/portForward/{pod}", f"/portForward/{pod}/{{uid}}"):
            app.router.add_route("*", path, self._port_forward)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through its server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving; sessions in progress end."""
        for task in self._sessions:
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- logs -----------------------------------------------------------------------------------

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            options = container_logs.LogOptions.from_query(request.query)
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from error
        try:
            files, live = self.kubelet.log_files(
                info["namespace"],
                info["pod"],
                info["container"],
                previous=_flag(request, "previous"),
            )
        except LookupError as error:
            raise web.HTTPNotFound(text=str(error)) from error
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        async for chunk in container_logs.read(files, options, live if options.follow else None):
            await response.write(chunk)
        await response.write_eof()
        return response

    # -- exec and attach ------------------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        options = remotecommand.Options.from_query(dict(request.query))
        argv = request.query.getall("command", [])
        if not argv:
            raise web.HTTPBadRequest(text="you must specify at least one command for the container")
        try:
            process, stdio = await self.kubelet.exec_session(
                info["namespace"], info["pod"], info["container"], argv, options
            )
        except LookupError as error:
            raise web.HTTPNotFound(text=str(error)) from error
        done = asyncio.ensure_future(process.wait())

        async def session(channels: remotecommand.Channels) -> None:
            await remotecommand.serve(channels, options, stdio, done, close_stdin=True)

        try:
            return await self._remote_command(request, options, session)
        finally:
            if process.returncode is None:  # the client left: so does its command
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            stdio.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(done)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        options = remotecommand.Options.from_query(dict(request.query))
        try:
            attached = self.kubelet.attach(info["namespace"], info["pod"], info["container"])
        except LookupError as error:
            raise web.HTTPNotFound(text=str(error)) from error

        async def session(channels: remotecommand.Channels) -> None:
            with attached as (stdio, close_stdin):
                await remotecommand.serve(channels, options, stdio, None, close_stdin=close_stdin)

        return await self._remote_command(request, options, session)

    async def _remote_command(
        self, request: web.Request, options: remotecommand.Options, session: _Session
    ) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            socket = web.WebSocketResponse(protocols=remotecommand.PROTOCOLS)
            await socket.prepare(request)
            if socket.ws_protocol is None:
                await socket.close(message=b"unsupported protocol: use v4 or v5.channel.k8s.io")
                return socket
            await socket.send_bytes(b"\x01")  # an empty stdout message: the session is open
            await session(remotecommand.WebSocketChannels(socket))
            return socket
        version = _negotiate(request, remotecommand.PROTOCOLS)
        spdy_session = self._upgrade(request, version)
        runner = asyncio.create_task(spdy_session.run())
        try:
            streams = await remotecommand.SpdyChannels.accept(spdy_session, options)
            served = asyncio.create_task(session(streams))
            # Attach ends when the client leaves: its session's end is the signal.
            await asyncio.wait({served, runner}, return_when=asyncio.FIRST_COMPLETED)
            if not served.done():
                served.cancel()
            await asyncio.gather(served, return_exceptions=True)
        except (TimeoutError, ConnectionError) as error:
            log.info("kubelet API: session ended early", error=str(error))
        finally:
            await spdy_session.close()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return _Switched()

    # -- port-forward ---------------------------------------------------------------------------

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            self.kubelet.sandbox_pid(info["namespace"], info["pod"])
        except LookupError as error:
            raise web.HTTPNotFound(text=str(error)) from error
        session = self._upgrade(request, _negotiate(request, (portforward.PROTOCOL,)))
        runner = asyncio.create_task(session.run())

        def sandbox() -> int | None:
            with contextlib.suppress(LookupError):
                return self.kubelet.sandbox_pid(info["namespace"], info["pod"])
            return None

        try:
            await portforward.serve(session, sandbox)
        finally:
            await session.close()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        return _Switched()

    # -- the SPDY upgrade -----------------------------------------------------------------------

    def _upgrade(self, request: web.Request, version: str) -> spdy.Session:
        """Answer `101 Switching Protocols` and take the connection over from aiohttp, whose
        HTTP parser knows no SPDY: the client sends nothing before it reads the answer, and the
        protocol is swapped before this returns, so no byte of SPDY reaches aiohttp."""
        if request.headers.get("Upgrade", "").lower() != "spdy/3.1":
            raise web.HTTPBadRequest(text="this endpoint upgrades to SPDY/3.1 or WebSocket only")
        transport = request.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            + f"X-Stream-Protocol-Version: {version}\r\n\r\n".encode()
        )
        return spdy.Session(reader, writer)


class _Switched(web.StreamResponse):
    """What a handler returns once it took its connection over: nothing more is written."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _Session(Protocol):
    async def __call__(self, channels: remotecommand.Channels) -> None: ...


def _negotiate(request: web.Request, supported: tuple[str, ...]) -> str:
    offered = [
        value.strip()
        for header in request.headers.getall("X-Stream-Protocol-Version", [])
        for value in header.split(",")
    ]
    for version in supported:
        if version in offered:
            return version
    raise web.HTTPForbidden(
        text=f"none of the offered protocols {offered} is supported: {', '.join(supported)}"
    )


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in ("1", "true")


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


@web.middleware
async def _only_the_api_server(request: web.Request, handler: Handler) -> web.StreamResponse:
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    names = [
        value
        for rdn in (peer or {}).get("subject", ())
        for key, value in rdn
        if key == "commonName"
    ]
    if API_SERVER_CLIENT not in names:
        raise web.HTTPForbidden(text=f"only {API_SERVER_CLIENT} may call this kubelet")
    return await handler(request)
