"""The controller's own decisions: step order and refusals of a terminating namespace."""

from __future__ import annotations

from reconciler.postgrescluster import controller
from reconciler.postgrescluster.steps import failover, patroni, tls
from reconciler.runtime.client import ApiError


def test_failover_then_tls_run_first_and_patroni_last() -> None:
    """A dead primary's lock is released before anything else (it reads no certificate);
    every later step may read the root certificate; Patroni acts on a converged cluster."""
    assert controller.STEPS[0] is failover.reconcile
    assert controller.STEPS[1] is tls.reconcile
    assert controller.STEPS[-1] is patroni.reconcile
    assert len(set(controller.STEPS)) == len(controller.STEPS)


def test_a_terminating_namespace_is_recognised_by_cause_or_message() -> None:
    cause = {"details": {"causes": [{"type": "NamespaceTerminating"}]}}
    assert controller.namespace_terminating(ApiError(403, "Forbidden", "x", cause))
    message = {
        "message": "unable to create new content in namespace ns because it is being terminated"
    }
    assert controller.namespace_terminating(ApiError(403, "Forbidden", "x", message))
    assert not controller.namespace_terminating(ApiError(403, "Forbidden", "x", {}))
    assert not controller.namespace_terminating(ApiError(409, "Conflict", "x", cause))
