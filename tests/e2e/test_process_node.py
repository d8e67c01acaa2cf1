"""The process node as a kubelet: restart policies and Jobs, the kubelet API (logs, exec,
attach, port-forward) reached through the API server as users reach it, Events."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
from reconciler_envtest import images
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, ApiError, Client
from reconciler.runtime.resources import EVENTS, JOBS, NODES, PODS
from tests.e2e.kubectl import kubectl, kubectl_on_terminal, port_forward

pytestmark = pytest.mark.asyncio(loop_scope="session")

IMAGE = images.related_images()[f"RELATED_IMAGE_POSTGRES_{images.POSTGRES_VERSION}"]


@pytest.fixture
def namespace_labels() -> dict[str, str]:
    """No Pod Security level: these tests try the process node with pods of every kind."""
    return {}


def pod(name: str, namespace: str, script: str, **spec: Any) -> JSON:
    """A pod of one container running `script` with sh."""
    container: JSON = {"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 2, **spec},
    }


async def phase(kube: Client, namespace: str, name: str, wanted: str) -> JSON:
    async def probe() -> JSON | None:
        found = await kube.get(PODS, name, namespace)
        return found if (found.get("status") or {}).get("phase") == wanted else None

    return await wait_for(probe, timeout=60, interval=0.2)


async def running(kube: Client, namespace: str, name: str) -> JSON:
    async def probe() -> JSON | None:
        found = await kube.get(PODS, name, namespace)
        statuses = (found.get("status") or {}).get("containerStatuses") or []
        return found if statuses and all("running" in s["state"] for s in statuses) else None

    return await wait_for(probe, timeout=60, interval=0.2)


def job(name: str, namespace: str, script: str, backoff_limit: int) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}
                    ],
                }
            },
        },
    }


async def test_job_that_exits_0_completes(kube: Client, namespace: str) -> None:
    await kube.create(JOBS, job("version", namespace, "psql --version", 0))

    async def complete() -> JSON | None:
        found = await kube.get(JOBS, "version", namespace)
        return found if (found.get("status") or {}).get("succeeded") == 1 else None

    await wait_for(complete, timeout=60, interval=0.2)
    (only,) = (await kube.list(PODS, namespace)).items
    assert only["status"]["phase"] == "Succeeded"
    state = only["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (0, "Completed")


async def test_job_that_fails_is_retried_up_to_its_backoff_limit(
    kube: Client, namespace: str
) -> None:
    await kube.create(JOBS, job("fails", namespace, "echo no; exit 1", 1))

    async def failed() -> JSON | None:
        found = await kube.get(JOBS, "fails", namespace)
        conditions = (found.get("status") or {}).get("conditions") or []
        return (
            found
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)
            else None
        )

    found = await wait_for(failed, timeout=90, interval=0.2)
    assert found["status"]["failed"] == 2
    pods = (await kube.list(PODS, namespace)).items
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    for failed_pod in pods:
        (status,) = failed_pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0
        assert status["state"]["terminated"]["exitCode"] == 1


async def test_on_failure_restarts_only_after_a_failure_and_keeps_the_previous_log(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    script = (
        "n=$(cat /scratch/n 2>/dev/null || echo 0); echo $((n + 1)) > /scratch/n; "
        'echo "run $((n + 1))"; echo "to stderr $((n + 1))" >&2; [ "$n" -ge 1 ]'
    )
    spec = pod("twice", namespace, script, restartPolicy="OnFailure")
    spec["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    await kube.create(PODS, spec)
    done = await phase(kube, namespace, "twice", "Succeeded")
    (status,) = done["status"]["containerStatuses"]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["state"]["terminated"]["exitCode"] == 0

    logs = await kubectl(control_plane, "-n", namespace, "logs", "twice")
    assert logs.stdout.splitlines() == ["run 2", "to stderr 2"], logs
    previous = await kubectl(control_plane, "-n", namespace, "logs", "twice", "--previous")
    assert previous.stdout.splitlines() == ["run 1", "to stderr 1"], previous
    stamped = await kubectl(
        control_plane, "-n", namespace, "logs", "twice", "--timestamps", "--tail=1"
    )
    assert stamped.stdout.startswith(done["status"]["startTime"][:4])
    assert stamped.stdout.rstrip().endswith(" to stderr 2")


async def test_crash_loop_shows_exit_code_back_off_and_last_words(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    await kube.create(PODS, pod("crash", namespace, "echo last words; exit 7"))

    async def restarted() -> JSON | None:
        found = await kube.get(PODS, "crash", namespace)
        statuses = (found.get("status") or {}).get("containerStatuses") or []
        return found if statuses and statuses[0].get("lastState", {}).get("terminated") else None

    found = await wait_for(restarted, timeout=60, interval=0.2)
    assert found["status"]["phase"] == "Running"
    last = found["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (7, "Error")

    async def back_off() -> list[JSON] | None:
        events = (await kube.list(EVENTS, namespace)).items
        return [e for e in events if e["reason"] == "BackOff"] or None

    (event,) = await wait_for(back_off, timeout=30, interval=0.2)
    assert event["type"] == "Warning"
    assert event["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert event["source"] == {"component": "kubelet", "host": control_plane.node_name}
    described = await kubectl(control_plane, "-n", namespace, "describe", "pod", "crash")
    assert "Exit Code:    7" in described.stdout, described.stdout
    assert "Back-off restarting failed container main" in described.stdout
    for reason in ("Pulled", "Created", "Started"):
        assert f"  {reason} " in described.stdout, described.stdout
    previous = await kubectl(control_plane, "-n", namespace, "logs", "crash", "--previous")
    assert previous.stdout == "last words\n", previous


async def test_probe_failures_and_deletion_are_events_with_kubelet_s_reasons(
    kube: Client, namespace: str
) -> None:
    probe = {"exec": {"command": ["sh", "-c", "echo not yet; exit 1"]}, "periodSeconds": 1}
    spec = pod("unready", namespace, "exec sleep infinity", container={"readinessProbe": probe})
    await kube.create(PODS, spec)

    async def events(reason: str) -> list[JSON] | None:
        found = (await kube.list(EVENTS, namespace)).items
        return [e for e in found if e["reason"] == reason] or None

    (unhealthy,) = await wait_for(lambda: events("Unhealthy"), timeout=30, interval=0.2)
    assert (unhealthy["type"], unhealthy["message"]) == (
        "Warning",
        "Readiness probe failed: not yet",
    )
    ready = await kube.get(PODS, "unready", namespace)
    assert ready["status"]["containerStatuses"][0]["ready"] is False
    await kube.delete(PODS, "unready", namespace)
    (killing,) = await wait_for(lambda: events("Killing"), timeout=30, interval=0.2)
    assert killing["message"] == "Stopping container main"


async def test_a_container_over_its_memory_limit_is_oom_killed(
    kube: Client, namespace: str
) -> None:
    spec = pod("hungry", namespace, "", restartPolicy="Never")
    container = spec["spec"]["containers"][0]
    container["command"] = ["python3", "-c", "x = bytearray(256 * 1024 * 1024)"]
    container["resources"] = {"limits": {"memory": "64Mi"}}
    await kube.create(PODS, spec)
    failed = await phase(kube, namespace, "hungry", "Failed")
    state = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (137, "OOMKilled")


async def test_unknown_image_waits_in_image_pull_back_off_naming_known_images(
    kube: Client, namespace: str
) -> None:
    spec = pod("busybox", namespace, "true")
    spec["spec"]["containers"][0]["image"] = "docker.io/library/busybox:1.36"
    await kube.create(PODS, spec)

    async def waiting() -> JSON | None:
        found = await kube.get(PODS, "busybox", namespace)
        statuses = (found.get("status") or {}).get("containerStatuses") or []
        state = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return state if state.get("reason") == "ErrImagePull" else None

    state = await wait_for(waiting, timeout=30, interval=0.2)
    assert "crunchy-postgres" in state["message"]
    assert (await kube.get(PODS, "busybox", namespace))["status"]["phase"] == "Pending"


async def test_exec_passes_output_and_exit_codes_back(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    await kube.create(PODS, pod("sleeper", namespace, "exec sleep infinity", hostname="napper"))
    await running(kube, namespace, "sleeper")

    answer = await kubectl(
        control_plane,
        "-n",
        namespace,
        "exec",
        "sleeper",
        "--",
        "sh",
        "-c",
        "echo $HOSTNAME; exit 3",
    )
    assert (answer.code, answer.stdout) == (3, "napper\n"), answer
    piped = await kubectl(
        control_plane, "-n", namespace, "exec", "-i", "sleeper", "--", "tr", "a-z", "A-Z",
        stdin=b"hello\nworld\n",
    )  # fmt: skip
    assert (piped.code, piped.stdout) == (0, "HELLO\nWORLD\n"), piped
    on_terminal = await kubectl_on_terminal(
        control_plane, "-n", namespace, "exec", "-it", "sleeper", "--", "sh", "-c", "tty; stty size"
    )
    assert on_terminal.code == 0, on_terminal
    assert "/dev/pts/" in on_terminal.stdout, on_terminal
    # From Python: v5 is translated to SPDY by the API server, v4 reaches the node as it is.
    for protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io"):
        done = await podexec.run(
            kube, namespace, "sleeper", "main", ["sh", "-c", "echo out; echo err >&2; exit 4"],
            protocol=protocol,
        )  # fmt: skip
        assert done == podexec.Completed(4, b"out\n", b"err\n"), protocol
    fed = await podexec.run(kube, namespace, "sleeper", "main", ["cat"], stdin=b"fed")
    assert fed == podexec.Completed(0, b"fed", b"")
    with pytest.raises(ApiError) as refused:  # the API server checks the container's name
        await podexec.run(kube, namespace, "sleeper", "nope", ["true"])
    assert refused.value.status == 400


async def test_attach_reaches_the_container_s_own_streams(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    script = 'echo ready; while read line; do echo "got $line"; done; echo bye'
    container = {"stdin": True, "stdinOnce": True}
    await kube.create(
        PODS, pod("reader", namespace, script, container=container, restartPolicy="Never")
    )
    await running(kube, namespace, "reader")
    attached = await kubectl(
        control_plane, "-n", namespace, "attach", "-i", "reader", "-c", "main", stdin=b"one\ntwo\n"
    )
    assert "got one\ngot two\n" in attached.stdout, attached
    await phase(kube, namespace, "reader", "Succeeded")  # stdinOnce: its input ended with ours
    logs = await kubectl(control_plane, "-n", namespace, "logs", "reader")
    assert logs.stdout == "ready\ngot one\ngot two\nbye\n", logs


async def test_port_forward_reaches_a_server_on_the_pod_s_loopback(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    echo = (
        "import socketserver\n"
        "class Echo(socketserver.StreamRequestHandler):\n"
        "    def handle(self):\n"
        "        for line in self.rfile:\n"
        "            self.wfile.write(b'echo ' + line)\n"
        "socketserver.ThreadingTCPServer(('127.0.0.1', 7000), Echo).serve_forever()\n"
    )
    spec = pod("echo", namespace, "")
    spec["spec"]["containers"][0]["command"] = ["python3", "-c", echo]
    await kube.create(PODS, spec)
    await running(kube, namespace, "echo")

    async def exchange(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        answer = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return answer

    async with port_forward(control_plane, namespace, "pod/echo", 7000) as local:
        # The server may still be starting: the first connections can fail.
        assert await wait_for(lambda: exchange(local), timeout=30, interval=0.5) == b"echo ping\n"
        # Two connections at once over one session.
        assert list(await asyncio.gather(exchange(local), exchange(local))) == [b"echo ping\n"] * 2


async def test_the_kubelet_api_answers_only_the_api_server(
    kube: Client, control_plane: ControlPlane
) -> None:
    node = await kube.get(NODES, control_plane.node_name)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    (address,) = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    url = f"https://{address}:{port}/healthz"
    anonymous = ssl.create_default_context(cafile=str(control_plane.pki_dir / "ca.crt"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(url, ssl=anonymous) as response:
                await response.read()
        admin = ssl.create_default_context(cafile=str(control_plane.pki_dir / "ca.crt"))
        admin.load_cert_chain(
            control_plane.pki_dir / "admin.crt", control_plane.pki_dir / "admin.key"
        )
        async with session.get(url, ssl=admin) as response:
            assert response.status == 403
        apiserver = ssl.create_default_context(cafile=str(control_plane.pki_dir / "ca.crt"))
        apiserver.load_cert_chain(
            control_plane.pki_dir / "apiserver-kubelet-client.crt",
            control_plane.pki_dir / "apiserver-kubelet-client.key",
        )
        async with session.get(url, ssl=apiserver) as response:
            assert (response.status, await response.text()) == (200, "ok")
