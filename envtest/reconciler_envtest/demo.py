"""`make demo`: a local control plane, the operator, and the hippo cluster running PostgreSQL.

The pods run for real on the process node (PostgreSQL 15, Patroni and pgBackRest from Debian's
packages), inside network and mount namespaces of the demo's own; the demo ends with a query
sent with the credentials of `hippo-pguser-hippo`, over TLS verified against the cluster's CA,
and once the stanza exists and WAL reaches hippo's repository. Everything
keeps running afterwards (`make down` stops it); look around with plain `kubectl` once
`.envtest/bin` is on PATH (kubectl with a kubeconfig that reaches the API server from this
machine through `relay`): `exec`, `logs` and `port-forward` work as in a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import yaml

from reconciler import naming
from reconciler.api import crd
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client, ConflictError
from reconciler.runtime.resources import (
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    STATEFUL_SETS,
)
from reconciler_envtest import daemon, images, isolation
from reconciler_envtest.process import free_port

NAMESPACE = "postgres-operator"
# The repository's example, as users apply it (this file is envtest/reconciler_envtest/demo.py).
EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "hippo.yaml"
CLUSTERS = crd.POSTGRES_CLUSTERS.resource
TIMEOUT = 180.0
T = TypeVar("T")


def start_operator(run_dir: Path, kubeconfig: Path) -> tuple[int, int]:
    """Start `reconciler run` in the background (pid file in the run directory, so `envtest
    down` stops it too); return its health and metrics ports."""
    pid_file = run_dir / "operator.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), 0)
            ports = (run_dir / "operator.ports").read_text().split()
            return int(ports[0]), int(ports[1])
    health, metrics = free_port(), free_port()
    env = {**os.environ, **images.related_images(), "PGO_NAMESPACE": NAMESPACE}
    with (run_dir / "operator.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "reconciler", "run",
                f"--kubeconfig={kubeconfig}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    pid_file.write_text(str(process.pid))
    (run_dir / "operator.ports").write_text(f"{health} {metrics}")
    return health, metrics


async def _install_crds(kubeconfig: Path) -> None:
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        await crd.install(kube, field_manager="reconciler-demo")


async def _converge(kubeconfig: Path) -> JSON:
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        with contextlib.suppress(ConflictError):
            await kube.create(NAMESPACES, namespace)
        hippo = yaml.safe_load(EXAMPLE.read_text())
        hippo["metadata"]["namespace"] = NAMESPACE
        # This machine runs one PostgreSQL major; everything else is applied as written (the
        # operator says itself what it does not act on yet).
        hippo["spec"]["postgresVersion"] = images.POSTGRES_VERSION
        print(
            f"applying {EXAMPLE.name} with postgresVersion {images.POSTGRES_VERSION} "
            "(this machine's PostgreSQL)"
        )
        await kube.apply(CLUSTERS, hippo, field_manager="kubectl")
        cluster: JSON = await _until(lambda: _ready(kube), "hippo to become Ready")
        await _show(kube, cluster)
        return cluster


async def _query(kubeconfig: Path) -> str:
    """A query sent as `hippo` with the user Secret's `uri`, TLS verify-full with the CA of the
    cluster certificate."""
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        user = await kube.get(SECRETS, "hippo-pguser-hippo", NAMESPACE)
        server = await kube.get(SECRETS, "hippo-cluster-cert", NAMESPACE)
    uri = base64.b64decode(user["data"]["uri"]).decode()
    tls = ssl.create_default_context(cadata=base64.b64decode(server["data"]["ca.crt"]).decode())

    async def query() -> str | None:
        try:
            connection = await asyncpg.connect(uri, ssl=tls, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return None  # the role is provisioned right after the cluster becomes writable
        try:
            return str(await connection.fetchval("select current_user || ' on ' || version()"))
        finally:
            await connection.close()

    return await _until(query, "a connection as hippo")


async def _backups(kubeconfig: Path) -> str:
    """Wait for the stanza, then archive a WAL segment into the repository: what the user's
    first backups build on."""
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:

        async def stanza() -> JSON | None:
            cluster = await kube.get(CLUSTERS, "hippo", NAMESPACE)
            repos = ((cluster.get("status") or {}).get("pgbackrest") or {}).get("repos") or []
            return cluster if repos and repos[0].get("stanzaCreated") else None

        cluster = await _until(stanza, "the pgBackRest stanza")
        selector = "postgres-operator.crunchydata.com/role=master"
        pods = await kube.list(PODS, NAMESPACE, label_selector=selector)
        primary = pods.items[0]["metadata"]["name"]

        async def archived() -> str | None:
            query = "select pg_switch_wal(), last_archived_wal from pg_stat_archiver"
            argv = ["psql", "-Atc", query]
            done = await podexec.run(kube, NAMESPACE, primary, "database", argv)
            last = done.stdout.decode().strip().rsplit("|", 1)[-1]
            return last if done.exit_code == 0 and last else None

        wal = await _until(archived, "WAL archiving")
        repo = cluster["status"]["pgbackrest"]["repos"][0]
        return f"stanza db in {repo['name']} (hippo-repo-host-0), WAL archived up to {wal}"


async def _ready(kube: Client) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", NAMESPACE)
    status = cluster.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    # At the applied generation: a demo run again over an earlier one's state waits for the
    # operator to have looked at this spec.
    current = status.get("observedGeneration") == cluster["metadata"]["generation"]
    return cluster if current and ready and ready[0]["status"] == "True" else None


async def _until(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def _show(kube: Client, cluster: JSON) -> None:
    print()
    for condition in cluster["status"]["conditions"]:
        state = f"{condition['type']}={condition['status']}"
        print(f"postgrescluster/hippo: {state} ({condition['message']})")
    selector = "postgres-operator.crunchydata.com/cluster=hippo"
    for resource in (STATEFUL_SETS, PODS, SERVICES, SECRETS):
        names = [
            o["metadata"]["name"]
            for o in (await kube.list(resource, NAMESPACE, label_selector=selector)).items
        ]
        print(f"  {resource.plural:<14} {', '.join(sorted(names))}")


def main() -> None:
    """Start (or reuse) the control plane and the operator, then apply hippo and query it."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("--dir", default=".envtest")
    run_dir = Path(arguments.parse_args().dir).resolve()
    if not isolation.is_isolated():
        started = time.monotonic()
        kubeconfig = daemon.up(run_dir, process_node=True)
        print(f"control plane ready in {time.monotonic() - started:.1f}s; kubeconfig: {kubeconfig}")
        sys.stdout.flush()
        # The rest runs beside the control plane, in its namespaces.
        command = daemon.enter(
            run_dir, [sys.executable, "-m", "reconciler_envtest.demo", "--dir", str(run_dir)]
        )
        os.execvp(command[0], command)
    kubeconfig = run_dir / "kubeconfig"
    asyncio.run(_install_crds(kubeconfig))
    health, metrics = start_operator(run_dir, kubeconfig)
    print(
        f"operator running: log {run_dir / 'operator.log'}, "
        f"http://127.0.0.1:{health}/readyz, http://127.0.0.1:{metrics}/metrics"
    )
    applied = time.monotonic()
    asyncio.run(_converge(kubeconfig))
    print(f"\nhippo Ready {time.monotonic() - applied:.1f}s after it was applied")
    answer = asyncio.run(_query(kubeconfig))
    print(f"query as hippo (uri of hippo-pguser-hippo, TLS verify-full): {answer}")
    print(f"backups: {asyncio.run(_backups(kubeconfig))}; the replica-create backup follows")
    labels = (
        "postgres-operator.crunchydata.com/cluster=hippo,postgres-operator.crunchydata.com/role"
    )
    password = "{{.data.password | base64decode}}"
    manual = (
        '{"spec":{"backups":{"pgbackrest":{"manual":'
        '{"repoName":"repo1","options":["--type=full"]}}}}}'
    )
    # The target is the shell's `date` at the time the user runs it: the JSON's single quotes
    # open and close around the command substitution.
    now = "'\"$(date -u '+%F %T+00')\"'"
    restore = (
        '{"spec":{"backups":{"pgbackrest":{"restore":{"enabled":true,"repoName":"repo1",'
        f'"options":["--type=time","--target=\\"{now}\\""]}}}}}}}}}}'
    )
    pooler = '{"spec":{"proxy":{"pgBouncer":{"config":{"global":{"pool_mode":"transaction"}}}}}}'
    monitoring = '{"spec":{"monitoring":{"pgmonitor":{"exporter":{}}}}}'
    print(
        "\nnext, in your shell (kubectl here runs on this machine; PGO's documentation, as is):\n"
        f"  export PATH={run_dir / 'bin'}:$PATH\n"
        f"  kubectl -n {NAMESPACE} get postgrescluster,pods,services,secrets\n"
        f"  kubectl -n {NAMESPACE} describe postgrescluster hippo\n"
        f"  PRIMARY=$(kubectl -n {NAMESPACE} get pod -o name -l {labels}=master)\n"
        f'  kubectl -n {NAMESPACE} exec -it "$PRIMARY" -c database -- psql   # as postgres\n'
        f'  kubectl -n {NAMESPACE} logs "$PRIMARY" -c database              # Patroni\'s log\n'
        f'  kubectl -n {NAMESPACE} port-forward "$PRIMARY" 5432:5432 &\n'
        f"  PGPASSWORD=$(kubectl -n {NAMESPACE} get secret hippo-pguser-hippo -o go-template="
        f"'{password}') psql -h localhost -U hippo zoo\n"
        f"  kubectl -n {NAMESPACE} get jobs,cronjobs    # the replica-create backup, schedules\n"
        f"  kubectl -n {NAMESPACE} exec hippo-repo-host-0 -c pgbackrest -- pgbackrest info\n"
        f"  kubectl -n {NAMESPACE} patch postgrescluster hippo --type merge -p "
        f"'{manual}'\n"
        f"  kubectl -n {NAMESPACE} annotate postgrescluster hippo --overwrite "
        f'{naming.ANNOTATION_PGBACKREST_BACKUP}="$(date)"   # a manual backup\n'
        f"  kubectl -n {NAMESPACE} patch postgrescluster hippo --type merge -p "
        f"'{restore}'   # point in time: now\n"
        f"  kubectl -n {NAMESPACE} get postgrescluster hippo -o jsonpath="
        "'{.status.conditions[?(@.type==\"PGBackRestRestorePreview\")].message}'\n"
        f"  kubectl -n {NAMESPACE} annotate postgrescluster hippo --overwrite "
        f'{naming.ANNOTATION_PGBACKREST_RESTORE}="$(date)"   # restore in place\n'
        f"  kubectl -n {NAMESPACE} patch postgrescluster hippo --type merge -p "
        f"'{pooler}'   # pgBouncer: <c>-pgbouncer, pgbouncer-uri in the user Secret\n"
        f"  kubectl -n {NAMESPACE} patch postgrescluster hippo --type merge -p "
        f"'{monitoring}'   # pgMonitor's exporter: the pods roll\n"
        f"  PRIMARY=$(kubectl -n {NAMESPACE} get pod -o name -l {labels}=master)   # once rolled\n"
        f'  kubectl -n {NAMESPACE} port-forward "$PRIMARY" 9187:9187 &\n'
        "  curl -s localhost:9187/metrics | grep ^ccp_   # dashboards: manifests/monitoring\n"
        "  make down    # stop everything"
    )


if __name__ == "__main__":
    main()
