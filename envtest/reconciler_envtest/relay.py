"""The API server of a control plane with a process node, reachable from the user's own shell.

That control plane lives in network namespaces of its own (see `isolation`); the relay listens
on 127.0.0.1 of the user's machine and carries each connection into the control plane's
namespace, to the API server. So plain `kubectl` runs on the user's machine, with
`host.kubeconfig`, and `kubectl port-forward` listens where the user's `psql` connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from reconciler_envtest.portforward import connect_in_namespace
from reconciler_envtest.process import alive, free_port

PID_FILE = "relay.pid"
KUBECONFIG = "host.kubeconfig"


def start(run_dir: Path, namespace_pid: int) -> Path:
    """Start the relay in the background unless it runs; the kubeconfig that uses it."""
    pid_file = run_dir / PID_FILE
    kubeconfig = run_dir / KUBECONFIG
    if pid_file.exists() and alive(int(pid_file.read_text())) and kubeconfig.exists():
        return kubeconfig
    port = free_port()
    target = int(json.loads((run_dir / "endpoints.json").read_text())["server"].rsplit(":", 1)[1])
    with (run_dir / "relay.log").open("ab") as log:
        relay = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler_envtest.relay",
                str(namespace_pid),
                str(target),
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(relay.pid))  # `down` stops what a pid file names
    config = yaml.safe_load((run_dir / "kubeconfig").read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig


async def serve(namespace_pid: int, target: int, port: int) -> None:
    """Relay 127.0.0.1:`port` here to 127.0.0.1:`target` in the namespace of `namespace_pid`."""

    async def relay(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            sock = await asyncio.to_thread(connect_in_namespace, namespace_pid, target)
            server_reader, server = await asyncio.open_connection(sock=sock)
        except OSError:
            client.close()
            return

        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(64 * 1024):
                    writer.write(data)
                    await writer.drain()
                writer.write_eof()

        await asyncio.gather(copy(client_reader, server), copy(server_reader, client))
        client.close()
        server.close()

    listener = await asyncio.start_server(relay, "127.0.0.1", port)
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(*(int(arg) for arg in sys.argv[1:4])))
