"""The Grafana dashboards of `manifests/monitoring` read only metrics that exist: the
exporter's (pgMonitor's queries, postgres_exporter's own) and the operator's."""

from __future__ import annotations

import yaml
from prometheus_client import generate_latest

from reconciler.pgmonitor import queries
from reconciler.runtime import metrics
from tests import dashboards
from tests.unit.pgmonitor.test_queries import metric_names

# postgres_exporter's own metric the dashboards read.
EXPORTER_OWN = {"pg_up"}


def _wanted(name: str) -> set[str]:
    dashboard = dashboards.dashboards()[name]
    return {m for expr in dashboards.queries(dashboard) for m in dashboards.metric_names(expr)}


def test_promql_metric_names_are_found() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, verb) (rate(rest_client_x_bucket{a="b(c)"}'
        "[$__rate_interval]))) / on (pod) group_left (role) up"
    )
    assert dashboards.metric_names(expr) == {"rest_client_x_bucket", "up"}
    assert dashboards.metric_names('label_values(ccp_a{namespace="$n"}, cluster)') == {"ccp_a"}


def test_the_cluster_dashboard_reads_the_exporter_s_metrics() -> None:
    served = metric_names(yaml.safe_load(queries.default_queries(15))) | EXPORTER_OWN
    wanted = _wanted("postgrescluster.json")
    assert {"ccp_connection_stats_total", "ccp_replication_lag_size_bytes"} <= wanted
    assert not wanted - served


def test_the_operator_dashboard_reads_the_operator_s_metrics() -> None:
    served = dashboards.exposed_names(generate_latest(metrics.REGISTRY).decode())
    wanted = _wanted("operator.json")
    assert {"controller_runtime_reconcile_total", "workqueue_depth"} <= wanted
    assert not wanted - served
