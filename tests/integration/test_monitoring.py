"""Monitoring on a real control plane (no PostgreSQL runs): the exporter's objects, its
container in the instance pods, PostgreSQL's configuration for it, and their removal."""

from __future__ import annotations

import pytest
import yaml
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import CONFIG_MAPS, SECRETS, STATEFUL_SETS, Resource
from tests.api_examples import hippo
from tests.operator import CLUSTERS, EXAMPLE_IMAGES

pytestmark = pytest.mark.usefixtures("crds", "operator")
PREFIX = "postgres-operator.crunchydata.com/"


async def _instance(kube: Client, namespace: str) -> JSON | None:
    selector = f"{PREFIX}cluster=hippo,{PREFIX}instance"
    items = (await kube.list(STATEFUL_SETS, namespace, label_selector=selector)).items
    return items[0] if items else None


async def _exists(kube: Client, resource: Resource, name: str, namespace: str) -> bool:
    try:
        await kube.get(resource, name, namespace)
    except NotFoundError:
        return False
    return True


def _dcs(config: JSON) -> JSON:
    document: JSON = yaml.safe_load(config["data"]["patroni.yaml"])["bootstrap"]["dcs"]
    return document


async def test_monitoring_objects_follow_the_spec(kube: Client, namespace: str) -> None:
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["monitoring"] = {"pgmonitor": {"exporter": {}}}
    await kube.create(CLUSTERS, cluster)

    async def with_exporter() -> JSON | None:
        sts = await _instance(kube, namespace)
        template = (sts or {}).get("spec", {}).get("template", {})
        names = [c["name"] for c in template.get("spec", {}).get("containers", [])]
        return template if "exporter" in names else None

    template = await wait_for(with_exporter, timeout=60)
    assert template["metadata"]["labels"][PREFIX + "crunchy-postgres-exporter"] == "true"
    (exporter,) = (c for c in template["spec"]["containers"] if c["name"] == "exporter")
    assert exporter["image"] == EXAMPLE_IMAGES["PGEXPORTER"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["monitoring-secret"]["secret"]["secretName"] == "hippo-monitoring"
    assert volumes["exporter-config"]["projected"]["sources"] == [
        {"configMap": {"name": "hippo-exporter-queries-config"}}
    ]
    secret = await kube.get(SECRETS, "hippo-monitoring", namespace)
    assert secret["metadata"]["labels"][PREFIX + "role"] == "monitoring"
    assert set(secret["data"]) == {"password", "verifier"}
    queries = await kube.get(CONFIG_MAPS, "hippo-exporter-queries-config", namespace)
    assert "ccp_connection_stats" in yaml.safe_load(queries["data"]["defaultQueries.yml"])
    dcs = _dcs(await kube.get(CONFIG_MAPS, "hippo-config", namespace))
    parameters = dcs["postgresql"]["parameters"]
    assert "pg_stat_statements" in parameters["shared_preload_libraries"].split(",")
    assert 'host all "ccp_monitoring" "127.0.0.0/8" "scram-sha-256"' in dcs["postgresql"]["pg_hba"]
    assert not await _exists(kube, CONFIG_MAPS, "hippo-exporter-web-config", namespace)

    # A customTLSSecret adds the web configuration; turning monitoring off removes it all.
    tls = {"customTLSSecret": {"name": "exporter-tls"}}
    patch = {"spec": {"monitoring": {"pgmonitor": {"exporter": tls}}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
    await wait_for(
        lambda: _exists(kube, CONFIG_MAPS, "hippo-exporter-web-config", namespace), timeout=60
    )
    await kube.patch(CLUSTERS, "hippo", {"spec": {"monitoring": None}}, namespace=namespace)

    async def removed() -> bool:
        sts = await _instance(kube, namespace)
        template = (sts or {}).get("spec", {}).get("template", {})
        names = [c["name"] for c in template.get("spec", {}).get("containers", [])]
        for resource, name in (
            (SECRETS, "hippo-monitoring"),
            (CONFIG_MAPS, "hippo-exporter-queries-config"),
            (CONFIG_MAPS, "hippo-exporter-web-config"),
        ):
            if await _exists(kube, resource, name, namespace):
                return False
        return bool(names) and "exporter" not in names

    await wait_for(removed, timeout=60)
    dcs = _dcs(await kube.get(CONFIG_MAPS, "hippo-config", namespace))
    assert "ccp_monitoring" not in str(dcs["postgresql"]["pg_hba"])
