"""A major upgrade of hippo (PostgreSQL 15, with data) to 17 on the process node, as PGO's
users run one: PGO's reasons while the cluster runs or lacks the annotation, then the real
pg_upgrade Job on the startup instance's volume.

PostgreSQL 17 here is the build `make packages` installs (envtest/.../postgres_majors.py); it has
no pgAudit, which PGO preloads into every cluster, so the Job stops before pg_upgrade changes
anything, the upgrade reports PGUpgradeFailed, and the cluster, started again, still has its
data on 15. The Job's own command is then run to the end by the same upgrade image on a 15 data
directory that preloads a library 17 has (`--link` and `--copy`).
"""

from __future__ import annotations

from typing import Any

import pytest
from reconciler_envtest import images
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.api.crd import PG_UPGRADES
from reconciler.pgupgrade import jobs
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import ENDPOINTS, EVENTS, JOBS, PODS
from tests.api_examples import hippo_upgrade
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql, writable_primary
from tests.operator import ready_cluster

UPGRADES = PG_UPGRADES.resource
pytestmark = pytest.mark.usefixtures("operator")


async def _condition(
    kube: Client, namespace: str, type_: str, reason: str, timeout: float = 120
) -> JSON:
    async def probe() -> JSON | None:
        upgrade = await kube.get(UPGRADES, "hippo-upgrade", namespace)
        found: list[JSON] = (upgrade.get("status") or {}).get("conditions") or []
        return next((c for c in found if c["type"] == type_ and c["reason"] == reason), None)

    return await wait_for(probe, timeout=timeout, interval=0.5)


async def _patch_cluster(kube: Client, namespace: str, patch: dict[str, Any]) -> None:
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)


async def _job_log(kube: Client, namespace: str, job: JSON) -> str:
    selector = f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"
    (pod,) = (await kube.list(PODS, namespace, label_selector=selector)).items
    path = PODS.path(namespace, pod["metadata"]["name"], "log")
    log = await kube.request_bytes(
        "GET", path, params={"container": "database"}, resource="pods/log"
    )
    return log.decode()


@pytest.mark.timeout(900)
async def test_upgrade_of_a_cluster_with_data(kube: Client, namespace: str) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace, timeout=180)
    primary = await primary_pod(kube, namespace)
    await psql(kube, primary, namespace, "create table kept as select generate_series(1, 1000) n")

    # Running, and not annotated: PGO's reasons, in PGO's order.
    await kube.create(UPGRADES, hippo_upgrade(namespace))
    running = await _condition(kube, namespace, "Progressing", "PGClusterNotShutdown")
    assert running["status"] == "False"
    await _patch_cluster(kube, namespace, {"spec": {"shutdown": True}})
    await _condition(kube, namespace, "Progressing", "PGClusterMissingRequiredAnnotation", 180)
    events = (await kube.list(EVENTS, namespace)).items
    reasons = {e["reason"] for e in events if e["involvedObject"]["kind"] == "PGUpgrade"}
    assert {"PGClusterNotShutdown", "PGClusterMissingRequiredAnnotation"} <= reasons

    # Annotated: Patroni's DCS goes, and the pg_upgrade Job runs on the primary's volume.
    annotation = {naming.ANNOTATION_ALLOW_UPGRADE: "hippo-upgrade"}
    await _patch_cluster(kube, namespace, {"metadata": {"annotations": annotation}})
    failed = await _condition(kube, namespace, "Succeeded", "PGUpgradeFailed", 300)
    assert failed["status"] == "False"
    job = await kube.get(JOBS, "hippo-upgrade-pgdata", namespace)
    assert job["metadata"]["labels"][naming.LABEL_PGUPGRADE] == "hippo-upgrade"
    log = await _job_log(kube, namespace, job)
    assert "Step 4: pg_upgrade --check" not in log  # stopped before pg_upgrade ran
    assert "PostgreSQL 17 of this image lacks the library pgaudit" in log
    patroni = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_PATRONI}"
    assert not (await kube.list(ENDPOINTS, namespace, label_selector=patroni)).items
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    assert "postgresVersion" not in (cluster.get("status") or {})

    # The user takes the annotation off and starts the cluster again: nothing was lost.
    await _patch_cluster(
        kube,
        namespace,
        {
            "metadata": {"annotations": {naming.ANNOTATION_ALLOW_UPGRADE: None}},
            "spec": {"shutdown": False},
        },
    )
    await ready_cluster(kube, namespace, timeout=240)
    primary = await writable_primary(kube, namespace)
    assert await psql(kube, primary, namespace, "select count(*) from kept") == "1000"
    assert (await psql(kube, primary, namespace, "show server_version")).startswith("15.")
    await kube.delete(UPGRADES, "hippo-upgrade", namespace)

    async def jobs_gone() -> bool:
        try:
            await kube.get(JOBS, "hippo-upgrade-pgdata", namespace)
        except NotFoundError:
            return True
        return False

    await wait_for(jobs_gone, timeout=120, interval=0.5)


async def test_a_cluster_of_a_major_without_pgaudit_says_why(kube: Client, namespace: str) -> None:
    """PostgreSQL 17 on this node has no pgAudit, which PGO preloads: the cluster's status and
    a Warning Event name the library, instead of an instance that is just never ready (Patroni
    gives up its bootstrap and exits; the kubelet restarts it with back-off, as under PGO)."""
    await kube.create(CLUSTERS, e2e_hippo(namespace, postgresVersion=17))

    async def reported() -> JSON | None:
        cluster = await kube.get(CLUSTERS, "hippo", namespace)
        found: list[JSON] = (cluster.get("status") or {}).get("conditions") or []
        return next((c for c in found if c["type"] == "PostgresStartupFailed"), None)

    condition = await wait_for(reported, timeout=180, interval=1)
    assert condition["status"] == "True"
    assert condition["reason"] == "PostgresLibraryMissing"
    assert 'no library "pgaudit"' in condition["message"]
    events = (await kube.list(EVENTS, namespace)).items
    assert any(e["reason"] == "PostgresLibraryMissing" for e in events)
    (pod,) = (await kube.list(PODS, namespace, label_selector=naming.LABEL_INSTANCE)).items
    assert f"instance pod {pod['metadata']['name']} " in condition["message"]


# A PostgreSQL 15 data directory with rows and a preloaded library, as the startup instance's
# volume holds one, then the upgrade Job's own command, then the upgraded server asked.
PREPARE = r"""
set -eu
old=/usr/pgsql-15/bin new=/usr/pgsql-17/bin
"${old}/initdb" --data-checksums --username=postgres --pgdata=/pgdata/pg15 > /dev/null
echo "shared_preload_libraries = 'pg_stat_statements'" >> /pgdata/pg15/postgresql.conf
echo '{"postgresql": {"parameters": {}}}' > /pgdata/pg15/patroni.dynamic.json
start() { "$1/pg_ctl" -D "$2" -w -o "-k /tmp -c listen_addresses=" -l "/tmp/$3.log" start; }
start "${old}" /pgdata/pg15 old > /dev/null
"${old}/psql" -h /tmp -U postgres -qc "create table kept as select generate_series(1, 1000) n"
"${old}/pg_ctl" -D /pgdata/pg15 -w stop > /dev/null
"$@"
start "${new}" /pgdata/pg17 new > /dev/null
"${new}/psql" -h /tmp -U postgres -Atc \
  "select 'rows=' || count(*) || ' version=' || current_setting('server_version_num') || \
   ' preloaded=' || current_setting('shared_preload_libraries') from kept"
test -f /pgdata/pg17/patroni.dynamic.json && echo 'patroni.dynamic.json kept'
"""


@pytest.mark.parametrize("method", ["Link", "Copy"])
async def test_the_upgrade_job_script_upgrades_data_to_17(
    kube: Client, namespace: str, method: str
) -> None:
    """The Job's command, run by the process node's upgrade image on a 15 data directory that
    preloads a library 17 has too: pg_upgrade to the end, the rows and the library there."""
    command = jobs.upgrade_command(
        {"fromPostgresVersion": 15, "toPostgresVersion": 17, "transferMethod": method},
        cpu_concurrency=True,
    )
    _, gid = images.profile("crunchy-upgrade").ids()
    pod: JSON = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "upgrade", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            # The namespace enforces the restricted Pod Security Standard, as the instances'
            # pods (whose template the operator's Job copies) meet it.
            "securityContext": {
                "fsGroup": gid,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [{"name": "postgres-data", "emptyDir": {}}],
            "containers": [
                {
                    "name": "database",
                    "image": images.related_images()["RELATED_IMAGE_PGUPGRADE"],
                    "command": ["bash", "-c", PREPARE, "prepare", *command],
                    "volumeMounts": [{"name": "postgres-data", "mountPath": "/pgdata"}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    await kube.create(PODS, pod)

    async def finished() -> JSON | None:
        found = await kube.get(PODS, "upgrade", namespace)
        phase = (found.get("status") or {}).get("phase")
        return found if phase in ("Succeeded", "Failed") else None

    done = await wait_for(finished, timeout=240, interval=1)
    path = PODS.path(namespace, "upgrade", "log")
    log = (await kube.request_bytes("GET", path, resource="pods/log")).decode()
    assert done["status"]["phase"] == "Succeeded", log
    assert f"pg_upgrade --{method.lower()}" in log
    assert "The upgrade is complete." in log
    assert "rows=1000 version=17" in log
    assert "preloaded=pg_stat_statements" in log
    assert "patroni.dynamic.json kept" in log
