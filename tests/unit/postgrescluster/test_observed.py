"""The instances a reconcile observes: the primary, and whether it is ready."""

from __future__ import annotations

from reconciler.postgrescluster.observed import (
    Instances,
    instance_set_of,
    is_primary,
    patroni_role,
    pod_ready,
)
from reconciler.runtime.client import JSON

PREFIX = "postgres-operator.crunchydata.com/"


def _pod(name: str, *, role: str | None = None, ready: bool = True) -> JSON:
    labels = {f"{PREFIX}instance": name, f"{PREFIX}instance-set": "one"}
    if role:
        labels[f"{PREFIX}role"] = role
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {
        "metadata": {"name": f"{name}-0", "labels": labels},
        "status": {"conditions": [condition]},
    }


def test_primary_is_the_pod_patroni_labelled_master() -> None:
    replica, primary = _pod("a", role="replica"), _pod("b", role="master")
    instances = Instances(pods=[replica, primary], statefulsets=[])
    assert instances.primary is primary
    assert instances.ready_primary is primary
    assert is_primary(primary)
    assert not is_primary(replica)
    assert instance_set_of(primary) == "one"


def test_a_primary_that_is_not_ready_is_not_reachable() -> None:
    starting = _pod("b", role="master", ready=False)
    instances = Instances(pods=[starting], statefulsets=[])
    assert instances.primary is starting
    assert instances.ready_primary is None
    assert not pod_ready(starting)
    assert not pod_ready({"metadata": {}})
    assert Instances(pods=[], statefulsets=[]).primary is None


def test_names_are_the_statefulsets_sorted() -> None:
    sets = [{"metadata": {"name": n}} for n in ("b", "a")]
    instances = Instances(pods=[], statefulsets=sets)
    assert instances.names == ["a", "b"]
    assert list(instances.statefulsets_by_name()) == ["b", "a"]


def test_the_standby_leader_is_the_leader_but_not_writable() -> None:
    """Patroni labels a standby cluster's leader `master` too; its `status` annotation says
    `standby_leader`, and only a leader that is not one takes writes."""
    leader = _pod("b", role="master")
    leader["metadata"]["annotations"] = {"status": '{"role":"standby_leader","state":"running"}'}
    standby = Instances(pods=[leader], statefulsets=[])
    assert standby.ready_primary is leader
    assert standby.writable_primary is None
    assert patroni_role(leader) == "standby_leader"
    leader["metadata"]["annotations"]["status"] = '{"role":"master","state":"running"}'
    assert Instances(pods=[leader], statefulsets=[]).writable_primary is leader
    assert patroni_role(_pod("c")) == ""
