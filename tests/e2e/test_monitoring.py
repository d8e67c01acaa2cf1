"""pgMonitor's exporter on real processes: monitoring turned on for a running hippo (two
instances, a volume repository with its replica-create backup), scraped over HTTP and then
HTTPS (`customTLSSecret`), the dashboards' metrics found in what the exporter and the operator
serve, and monitoring turned off again."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import aiohttp
import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.pki import authority
from reconciler.postgrescluster.observed import pod_ready
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import CONFIG_MAPS, SECRETS
from tests import dashboards
from tests.api_examples import hippo
from tests.e2e.cluster import CLUSTERS, pods_by_role, psql
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

EXPORTER_PORT = 9187
TLS_SECRET = "hippo-exporter-tls"
TLS_NAME = "hippo-exporter"
OBJECTS = (
    (SECRETS, "hippo-monitoring"),
    (CONFIG_MAPS, "hippo-exporter-queries-config"),
)


def _condition(cluster: JSON, kind: str) -> JSON:
    conditions = (cluster.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


async def _instance_pods(kube: Client, namespace: str) -> list[JSON]:
    return [pod for pods in (await pods_by_role(kube, namespace)).values() for pod in pods]


async def _pods_converged(kube: Client, namespace: str, *, exporter: bool, tls: bool) -> list[JSON]:
    """Both instance pods ready, each with (or without) the exporter as asked; the cluster
    Ready for its generation."""

    async def probe() -> list[JSON] | None:
        pods = await _instance_pods(kube, namespace)
        if len(pods) != 2:
            return None
        for pod in pods:
            names = [c["name"] for c in pod["spec"]["containers"]]
            volumes = {v["name"] for v in pod["spec"]["volumes"]}
            if (naming.CONTAINER_EXPORTER in names) != exporter or ("web-config" in volumes) != tls:
                return None
            if pod["metadata"].get("deletionTimestamp") or not pod_ready(pod):
                return None
        await ready_cluster(kube, namespace, timeout=5)
        return pods

    return await wait_for(probe, timeout=600, interval=1)


async def _scrape(pod: JSON, *, tls: ssl.SSLContext | None = None) -> str:
    scheme = "https" if tls else "http"
    url = f"{scheme}://{pod['status']['podIP']}:{EXPORTER_PORT}/metrics"
    extra: dict[str, Any] = {"ssl": tls, "server_hostname": TLS_NAME} if tls else {}
    async with aiohttp.ClientSession() as session, session.get(url, **extra) as response:
        response.raise_for_status()
        return await response.text()


def _samples(exposition: str) -> dict[str, list[float]]:
    """Sample values by series name (labels dropped)."""
    values: dict[str, list[float]] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values.setdefault(series.split("{", 1)[0], []).append(float(value))
    return values


async def _scrape_all(
    kube: Client, namespace: str, *, tls: ssl.SSLContext | None = None
) -> dict[str, dict[str, list[float]]]:
    """Every instance's metrics by Patroni role, once the exporters serve pgMonitor's queries
    (the primary's with the backups pgBackRest reports)."""

    async def probe() -> dict[str, dict[str, list[float]]] | None:
        scraped: dict[str, dict[str, list[float]]] = {}
        for role, pods in (await pods_by_role(kube, namespace)).items():
            for pod in pods:
                scraped[role] = _samples(await _scrape(pod, tls=tls))
        primary, replica = scraped.get("master", {}), scraped.get("replica", {})
        wanted = (
            "ccp_connection_stats_total",
            "ccp_backrest_last_full_backup_time_since_completion_seconds",
        )
        if all(name in primary for name in wanted) and "ccp_connection_stats_total" in replica:
            return scraped
        return None

    return await wait_for(probe, timeout=180, interval=2)


@pytest.mark.timeout(1500)
async def test_monitoring_on_scraped_over_http_and_https_then_off(
    kube: Client, namespace: str, operator: Manager
) -> None:
    """One cluster through monitoring on, HTTPS, and off, phase by phase."""
    await _running_with_a_backup(kube, namespace)
    scraped = await _monitoring_on(kube, namespace)
    await _dashboards_served(scraped, operator)
    await _https(kube, namespace)
    await _monitoring_off(kube, namespace)


async def _running_with_a_backup(kube: Client, namespace: str) -> None:
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["postgresVersion"] = 15
    cluster["spec"]["instances"][0]["replicas"] = 2
    cluster["spec"]["backups"]["pgbackrest"]["global"] = {"start-fast": "y"}
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=300)

    async def backed_up() -> bool:
        found = await kube.get(CLUSTERS, "hippo", namespace)
        return _condition(found, "PGBackRestReplicaCreate").get("status") == "True"

    await wait_for(backed_up, timeout=600, interval=1)


async def _monitoring_on(kube: Client, namespace: str) -> dict[str, dict[str, list[float]]]:
    """The exporter in every instance pod, its objects, its role; real metrics."""
    monitoring: JSON = {"pgmonitor": {"exporter": {}}}
    await kube.patch(CLUSTERS, "hippo", {"spec": {"monitoring": monitoring}}, namespace=namespace)
    pods = await _pods_converged(kube, namespace, exporter=True, tls=False)
    for pod in pods:
        assert pod["metadata"]["labels"][naming.LABEL_PGMONITOR_DISCOVERY] == "true"
        (container,) = (c for c in pod["spec"]["containers"] if c["name"] == "exporter")
        assert container["ports"] == [
            {"name": "exporter", "containerPort": 9187, "protocol": "TCP"}
        ]
    secret = await kube.get(SECRETS, "hippo-monitoring", namespace)
    assert set(secret["data"]) == {"password", "verifier"}
    assert base64.b64decode(secret["data"]["verifier"]).startswith(b"SCRAM-SHA-256$")
    queries = await kube.get(CONFIG_MAPS, "hippo-exporter-queries-config", namespace)
    assert "ccp_connection_stats" in queries["data"]["defaultQueries.yml"]
    scraped = await _scrape_all(kube, namespace)
    primary, replica = scraped["master"], scraped["replica"]
    assert primary["pg_up"] == [1.0]
    assert replica["pg_up"] == [1.0]
    assert primary["ccp_is_in_recovery_status"] == [2.0]
    assert replica["ccp_is_in_recovery_status"] == [1.0]
    assert min(primary["ccp_database_size_bytes"]) > 0
    assert primary["ccp_replication_lag_size_bytes"] == [pytest.approx(0, abs=16 << 20)]
    assert primary["ccp_backrest_last_full_backup_time_since_completion_seconds"][0] >= 0
    assert primary["ccp_archive_command_status_archived_count"][0] >= 1
    assert primary["ccp_nodemx_data_disk_total_bytes"][0] > 0
    assert sum(primary["ccp_pg_stat_statements_total_calls_count"]) > 0
    (leader,) = (await pods_by_role(kube, namespace))["master"]
    libraries = await psql(kube, leader, namespace, "show shared_preload_libraries")
    assert "pg_stat_statements" in libraries.split(",")
    return scraped


async def _dashboards_served(scraped: dict[str, dict[str, list[float]]], operator: Manager) -> None:
    """Every metric the dashboards query is one this run's exporters or operator serve."""
    served = {name for metrics in scraped.values() for name in metrics}
    url = f"http://127.0.0.1:{operator.port('metrics')}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        served |= dashboards.exposed_names(await response.text())
    for name, dashboard in dashboards.dashboards().items():
        wanted = {
            m for expr in dashboards.queries(dashboard) for m in dashboards.metric_names(expr)
        }
        assert wanted, name
        assert not wanted - served, (name, sorted(wanted - served))


async def _https(kube: Client, namespace: str) -> None:
    """HTTPS with the user's certificate: verified against its CA; plain HTTP refused."""
    root = authority.new_root()
    leaf = authority.issue_leaf(root, TLS_NAME, [TLS_NAME])
    tls_secret: JSON = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TLS_SECRET, "namespace": namespace},
        "data": {
            key: base64.b64encode(value).decode()
            for key, value in (
                ("tls.crt", leaf.certificate_pem),
                ("tls.key", leaf.key_pem),
                ("ca.crt", root.certificate_pem),
            )
        },
    }
    await kube.create(SECRETS, tls_secret)
    exporter = {"customTLSSecret": {"name": TLS_SECRET}}
    patch = {"spec": {"monitoring": {"pgmonitor": {"exporter": exporter}}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
    pods = await _pods_converged(kube, namespace, exporter=True, tls=True)
    web = await kube.get(CONFIG_MAPS, "hippo-exporter-web-config", namespace)
    assert "tls_server_config" in web["data"]["web-config.yml"]
    context = ssl.create_default_context(cadata=root.certificate_pem.decode())
    scraped = await _scrape_all(kube, namespace, tls=context)
    assert scraped["master"]["pg_up"] == [1.0]
    with pytest.raises(aiohttp.ClientError):
        await _scrape(pods[0])


async def _monitoring_off(kube: Client, namespace: str) -> None:
    """The container, its label and objects go; the role cannot log in; PostgreSQL runs
    without pg_stat_statements and has no restart left pending."""
    await kube.patch(CLUSTERS, "hippo", {"spec": {"monitoring": None}}, namespace=namespace)
    pods = await _pods_converged(kube, namespace, exporter=False, tls=False)
    assert all(naming.LABEL_PGMONITOR_DISCOVERY not in p["metadata"]["labels"] for p in pods)

    async def removed() -> bool:
        for resource, name in (*OBJECTS, (CONFIG_MAPS, "hippo-exporter-web-config")):
            try:
                await kube.get(resource, name, namespace)
            except NotFoundError:
                continue
            return False
        found = await kube.get(CLUSTERS, "hippo", namespace)
        return "monitoring" not in (found.get("status") or {})

    await wait_for(removed, timeout=120, interval=1)
    (leader,) = (await pods_by_role(kube, namespace))["master"]
    login = "select rolcanlogin from pg_roles where rolname = 'ccp_monitoring'"
    assert await psql(kube, leader, namespace, login) == "f"
    for pod in pods:
        rules = "select count(*) from pg_hba_file_rules where 'ccp_monitoring' = any(user_name)"
        assert await psql(kube, pod, namespace, rules) == "0"
        libraries = await psql(kube, pod, namespace, "show shared_preload_libraries")
        assert "pg_stat_statements" not in libraries.split(",")
        pending = "select count(*) from pg_settings where pending_restart"
        assert await psql(kube, pod, namespace, pending) == "0"
