"""Prometheus metrics of the runtime, named as controller-runtime names them.

Dashboards built for controller-runtime operators (PGO's included) work unchanged.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

rest_client_requests_total = Counter(
    "rest_client_requests",
    "Number of HTTP requests to the API server, by method, resource and status code.",
    ["method", "resource", "code"],
    registry=REGISTRY,
)
rest_client_request_duration_seconds = Histogram(
    "rest_client_request_duration_seconds",
    "Request latency to the API server, by method.",
    ["verb"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0),
    registry=REGISTRY,
)


def observe_request(method: str, resource: str, code: str, seconds: float) -> None:
    """Count one API request and record how long it took."""
    rest_client_requests_total.labels(method, resource, code).inc()
    rest_client_request_duration_seconds.labels(method).observe(seconds)


# -- work queues (client-go util/workqueue, as controller-runtime registers them) ---------------
_QUEUE_LABELS = ["name", "controller"]
workqueue_depth = Gauge(
    "workqueue_depth", "Current depth of the work queue.", _QUEUE_LABELS, registry=REGISTRY
)
workqueue_adds_total = Counter(
    "workqueue_adds", "Total number of adds handled by the queue.", _QUEUE_LABELS, registry=REGISTRY
)
workqueue_retries_total = Counter(
    "workqueue_retries",
    "Total number of retries handled by the queue.",
    _QUEUE_LABELS,
    registry=REGISTRY,
)
_QUEUE_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
workqueue_queue_duration_seconds = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds a key stays in the queue before it is processed.",
    _QUEUE_LABELS,
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
workqueue_work_duration_seconds = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing a key from the queue takes.",
    _QUEUE_LABELS,
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
workqueue_unfinished_work_seconds = Gauge(
    "workqueue_unfinished_work_seconds",
    "Seconds of work in progress that has not been observed by work_duration yet.",
    _QUEUE_LABELS,
    registry=REGISTRY,
)
workqueue_longest_running_processor_seconds = Gauge(
    "workqueue_longest_running_processor_seconds",
    "Seconds the longest running processor of the queue has been running.",
    _QUEUE_LABELS,
    registry=REGISTRY,
)

# -- controllers (controller-runtime pkg/internal/controller/metrics) --------------------------
controller_runtime_reconcile_total = Counter(
    "controller_runtime_reconcile",
    "Total number of reconciliations per controller and result.",
    ["controller", "result"],
    registry=REGISTRY,
)
controller_runtime_reconcile_errors_total = Counter(
    "controller_runtime_reconcile_errors",
    "Total number of reconciliation errors per controller.",
    ["controller"],
    registry=REGISTRY,
)
controller_runtime_terminal_reconcile_errors_total = Counter(
    "controller_runtime_terminal_reconcile_errors",
    "Total number of terminal reconciliation errors per controller.",
    ["controller"],
    registry=REGISTRY,
)
controller_runtime_reconcile_time_seconds = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=(
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
        0.35,
        0.4,
        0.45,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
        1.25,
        1.5,
        1.75,
        2.0,
        2.5,
        3.0,
        3.5,
        4.0,
        4.5,
        5,
        6,
        7,
        8,
        9,
        10,
        15,
        20,
        25,
        30,
        40,
        50,
        60,
    ),
    registry=REGISTRY,
)
controller_runtime_max_concurrent_reconciles = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller.",
    ["controller"],
    registry=REGISTRY,
)
controller_runtime_active_workers = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller.",
    ["controller"],
    registry=REGISTRY,
)

# -- leader election (client-go tools/leaderelection) ------------------------------------------
leader_election_master_status = Gauge(
    "leader_election_master_status",
    "1 while this process holds the named lease, 0 otherwise.",
    ["name"],
    registry=REGISTRY,
)
leader_election_slowpath_total = Counter(
    "leader_election_slowpath",
    "Lease acquisitions and renewals that needed a fresh read of the lease.",
    ["name"],
    registry=REGISTRY,
)

# -- informers ---------------------------------------------------------------------------------
informer_relists_total = Counter(
    "informer_relists",
    "Full LISTs an informer made: the first, and after each 410 Gone or lost watch.",
    ["resource"],
    registry=REGISTRY,
)
