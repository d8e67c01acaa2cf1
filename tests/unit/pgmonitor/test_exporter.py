"""The exporter's container, volumes and objects, as PGO lays them out."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from reconciler.intent import Owner
from reconciler.pgmonitor import exporter

OWNER = Owner("hippo", "ns", "uid-1", labels={"team": "db"})


def _spec(version: int = 15, **settings: Any) -> dict[str, Any]:
    return {
        "postgresVersion": version,
        "port": 5432,
        "monitoring": {"pgmonitor": {"exporter": settings}},
    }


def test_exporter_is_on_only_with_its_section() -> None:
    assert exporter.exporter_settings({}) is None
    assert exporter.exporter_settings({"monitoring": {"pgmonitor": {}}}) is None
    assert exporter.exporter_settings(_spec()) == {}


def test_container_logs_in_over_loopback_with_the_password_file() -> None:
    container, volumes = exporter.instance_additions(
        "hippo", _spec(), {}, "example/exporter:1", append_queries=False
    )
    assert container["name"] == "exporter"
    assert container["image"] == "example/exporter:1"
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "DATA_SOURCE_URI": "localhost:5432/postgres",
        "DATA_SOURCE_USER": "ccp_monitoring",
        "DATA_SOURCE_PASS_FILE": "/opt/crunchy/password",
    }
    assert container["ports"] == [{"name": "exporter", "containerPort": 9187, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/conf", "/opt/crunchy/", "/tmp"]
    assert [v["name"] for v in volumes] == ["exporter-config", "monitoring-secret"]
    assert volumes[0]["projected"]["sources"] == [
        {"configMap": {"name": "hippo-exporter-queries-config"}}
    ]
    script = container["command"][3]
    assert "--web.listen-address=:9187" in script
    assert "--extend.query-path=/tmp/queries.yml" in script
    assert container["command"][4:] == ["postgres_exporter_watcher"]


def test_user_queries_replace_the_defaults_unless_the_gate_appends_them() -> None:
    mine = [{"configMap": {"name": "my-queries"}}]
    spec = _spec(configuration=mine)
    _, volumes = exporter.instance_additions("hippo", spec, {}, "e", append_queries=False)
    assert volumes[0]["projected"]["sources"] == mine
    _, volumes = exporter.instance_additions("hippo", spec, {}, "e", append_queries=True)
    assert volumes[0]["projected"]["sources"] == [
        *mine,
        {"configMap": {"name": "hippo-exporter-queries-config"}},
    ]


def test_custom_tls_secret_serves_https() -> None:
    spec = _spec(customTLSSecret={"name": "exporter-tls"})
    container, volumes = exporter.instance_additions("hippo", spec, {}, "e", append_queries=False)
    assert container["command"][5:] == ["--web.config.file=/web-config/web-config.yml"]
    by_name = {v["name"]: v for v in volumes}
    assert by_name["exporter-certs"]["projected"]["sources"] == [
        {"secret": {"name": "exporter-tls"}}
    ]
    assert by_name["web-config"]["configMap"] == {"name": "hippo-exporter-web-config"}
    web = yaml.safe_load(exporter.web_config_map(OWNER)["data"]["web-config.yml"])
    assert web == {
        "tls_server_config": {"cert_file": "/certs/tls.crt", "key_file": "/certs/tls.key"}
    }


@pytest.mark.parametrize(
    ("version", "annotations", "flags"),
    [
        (17, {}, ["--no-collector.stat_bgwriter"]),
        (17, {exporter.ANNOTATION_COLLECTORS: "None"}, []),
        (16, {}, []),
    ],
)
def test_collectors_follow_the_version_and_the_annotation(
    version: int, annotations: dict[str, str], flags: list[str]
) -> None:
    container, _ = exporter.instance_additions(
        "hippo", _spec(version), annotations, "e", append_queries=False
    )
    assert container["command"][5:] == flags
    turned_off = "--[no-]collector." in container["command"][3]
    assert turned_off == bool(annotations)


def test_objects_carry_pgo_names_and_labels() -> None:
    secret = exporter.secret(OWNER, "pw", "SCRAM-SHA-256$x")
    assert secret["metadata"]["name"] == "hippo-monitoring"
    assert secret["metadata"]["labels"] == {
        "postgres-operator.crunchydata.com/cluster": "hippo",
        "postgres-operator.crunchydata.com/role": "monitoring",
        "team": "db",
    }
    assert base64.b64decode(secret["data"]["password"]) == b"pw"
    queries = exporter.queries_config_map(OWNER, 15)
    assert queries["metadata"]["name"] == "hippo-exporter-queries-config"
    assert "ccp_connection_stats" in yaml.safe_load(queries["data"]["defaultQueries.yml"])
    assert exporter.web_config_map(OWNER)["metadata"]["name"] == "hippo-exporter-web-config"


def test_no_exporter_without_its_section() -> None:
    with pytest.raises(ValueError, match=r"spec\.monitoring\.pgmonitor\.exporter"):
        exporter.instance_additions("hippo", {"port": 5432}, {}, "e", append_queries=False)
