"""Prometheus metrics of the runtime, named as controller-runtime names them.

Dashboards built for controller-runtime operators (PGO's included) work unchanged.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
