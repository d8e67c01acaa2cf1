"""§3 of the chaos tier: the operator and the control plane fail too.

- `kill -9` of the operator (its own process) at random moments while a 3-instance cluster is
  created and while it is deleted, for `rounds(1, 10)` rounds, the seed printed
  (`CHAOS_SEED=<seed>` replays one): it converges, each instance has exactly one of each of
  its objects, the finalizer stays while any instance pod exists and goes once none does, and
  nothing labelled with the cluster is left afterwards.
- The operator frozen while its cluster changes, etcd compacted past what it saw, the API
  server restarted: it carries out what changed meanwhile, and its informers list again at
  most twice each (after 410 Gone), never in a storm.
- Two operators electing a leader on one Lease: the standby writes nothing while the leader
  lives, and takes over after the leader is killed, within the lease duration.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest
import pytest_asyncio
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.api import crd
from reconciler.postgrescluster.watches import OWNED
from reconciler.runtime.client import Client, NotFoundError
from reconciler.runtime.leader import JITTER, LeaseTimings
from reconciler.runtime.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    SERVICES,
    STATEFUL_SETS,
)
from tests.chaos.conftest import rounds
from tests.chaos.operator_process import OperatorProcess
from tests.e2e.cluster import CLUSTERS, e2e_hippo
from tests.integration.test_informer import compact_etcd
from tests.operator import ready_cluster

INSTANCE_KINDS = (STATEFUL_SETS, PODS, *OWNED)


@pytest_asyncio.fixture(loop_scope="session")
async def crds(kube: Client) -> None:
    """The CRDs, without the in-process operator: these scenarios run their own."""
    await crd.install(kube, field_manager="reconciler-tests")


@pytest.fixture
def log_dir(control_plane: ControlPlane, namespace: str) -> Path:
    """Where the operator processes of the test write their logs (kept with the run)."""
    return control_plane.run_dir / "chaos" / namespace


@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("crds")
async def test_operator_killed_while_creating_and_deleting(
    kube: Client, namespace: str, operator_kubeconfig: Path, log_dir: Path
) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(2**32))
    print(f"\n[chaos] operator kill -9 rounds: CHAOS_SEED={seed}")
    chance = random.Random(seed)
    operator = OperatorProcess(operator_kubeconfig, namespace, log_dir, leader_elect=False)
    await operator.start()
    try:
        for round_ in range(rounds(1, 10)):
            started = time.monotonic()
            cluster = e2e_hippo(namespace)
            cluster["spec"]["instances"][0]["replicas"] = 3
            await kube.create(CLUSTERS, cluster)
            kills = sorted(chance.uniform(0, 25) for _ in range(2))
            await _kill_at(operator, kills)
            await ready_cluster(kube, namespace, timeout=400)
            instances = await _one_of_each(kube, namespace)
            created = time.monotonic() - started

            started = time.monotonic()
            await kube.delete(CLUSTERS, "hippo", namespace)
            kill = [chance.uniform(0, 4)]
            await _kill_at(operator, kill)
            await _finalizer_held_while_instances_exist(kube, namespace)
            await _nothing_left(kube, namespace)
            print(
                f"[chaos] round {round_ + 1}: kill -9 at {', '.join(f'{k:.1f}' for k in kills)}s "
                f"of the creation of {len(instances)} instances (Ready after {created:.0f}s) "
                f"and at {kill[0]:.1f}s of the deletion (all gone after "
                f"{time.monotonic() - started:.0f}s)"
            )
    finally:
        await operator.kill()


async def _kill_at(operator: OperatorProcess, moments: list[float]) -> None:
    """`kill -9` the operator `moments` seconds from now, and start it again each time."""
    begin = time.monotonic()
    for moment in moments:
        # The fault's moment, chosen by the seed: nothing is waited for here.
        await asyncio.sleep(max(0.0, begin + moment - time.monotonic()))
        await operator.kill()
        await operator.start()


async def _one_of_each(kube: Client, namespace: str) -> set[str]:
    """The instances, after checking that every object labelled with an instance belongs to
    one of the StatefulSets and that each instance has one pod and one data volume."""
    label = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_INSTANCE}"
    statefulsets = (await kube.list(STATEFUL_SETS, namespace, label_selector=label)).items
    instances = {s["metadata"]["name"] for s in statefulsets}
    assert len(instances) == 3, f"instances: {sorted(instances)}"
    for resource in INSTANCE_KINDS:
        for obj in (await kube.list(resource, namespace, label_selector=label)).items:
            owner = obj["metadata"]["labels"][naming.LABEL_INSTANCE]
            assert owner in instances, f"{resource} {obj['metadata']['name']} of no instance"
    pods = (await kube.list(PODS, namespace, label_selector=label)).items
    assert sorted(p["metadata"]["labels"][naming.LABEL_INSTANCE] for p in pods) == sorted(instances)
    data = f"{label},{naming.LABEL_ROLE}={naming.ROLE_POSTGRES_DATA}"
    claims = (await kube.list(PERSISTENT_VOLUME_CLAIMS, namespace, label_selector=data)).items
    assert sorted(c["metadata"]["labels"][naming.LABEL_INSTANCE] for c in claims) == sorted(
        instances
    )
    return instances


async def _finalizer_held_while_instances_exist(kube: Client, namespace: str) -> None:
    """Until the cluster is gone: whenever an instance pod exists, the finalizer is there;
    once the cluster is gone, no instance pod is."""
    label = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_INSTANCE}"

    async def gone() -> bool:
        try:
            cluster = await kube.get(CLUSTERS, "hippo", namespace)
        except NotFoundError:
            pods = (await kube.list(PODS, namespace, label_selector=label)).items
            assert not pods, "the finalizer went while instance pods were left"
            return True
        pods = (await kube.list(PODS, namespace, label_selector=label)).items
        if pods:
            assert naming.FINALIZER in (cluster["metadata"].get("finalizers") or [])
        return False

    await wait_for(gone, timeout=300, interval=0.1)


async def _nothing_left(kube: Client, namespace: str) -> None:
    """Every object labelled with the cluster goes (the garbage collector, Patroni's records
    by the operator)."""
    label = f"{naming.LABEL_CLUSTER}=hippo"

    async def empty() -> bool:
        for resource in INSTANCE_KINDS:
            if (await kube.list(resource, namespace, label_selector=label)).items:
                return False
        return True

    await wait_for(empty, timeout=180, interval=0.5)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("crds")
async def test_apiserver_restart_and_compaction_missed_changes(
    kube: Client,
    namespace: str,
    operator_kubeconfig: Path,
    log_dir: Path,
    control_plane: ControlPlane,
) -> None:
    operator = OperatorProcess(operator_kubeconfig, namespace, log_dir, leader_elect=False)
    await operator.start()
    try:
        await kube.create(CLUSTERS, e2e_hippo(namespace))
        await ready_cluster(kube, namespace, timeout=300)
        before = await operator.metrics()
        # Frozen, the operator misses every event that follows; etcd forgets the versions it
        # saw; the restarted API server's watch cache starts after them.
        assert operator.process is not None
        operator.process.send_signal(signal.SIGSTOP)
        try:
            labels = {"spec": {"metadata": {"labels": {"chaos": "missed"}}}}
            await kube.patch(CLUSTERS, "hippo", labels, namespace=namespace)
            await kube.delete(SERVICES, "hippo-replicas", namespace)
            await compact_etcd(control_plane.etcd_url)
            await control_plane.stop_apiserver()
            await control_plane.start_apiserver()
        finally:
            operator.process.send_signal(signal.SIGCONT)
        started = time.monotonic()
        await ready_cluster(kube, namespace, timeout=300)

        async def carried_out() -> bool:
            service = await kube.get(SERVICES, "hippo-replicas", namespace)
            label = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_INSTANCE}"
            sets = (await kube.list(STATEFUL_SETS, namespace, label_selector=label)).items
            return service["metadata"]["labels"].get("chaos") == "missed" and all(
                s["metadata"]["labels"].get("chaos") == "missed" for s in sets
            )

        await wait_for(carried_out, timeout=120, interval=0.5)
        took = time.monotonic() - started
        after = await operator.metrics()
    finally:
        await operator.kill()
    relists = _delta(before, after, "informer_relists_total")
    informers = sum(1 for name in after if name.startswith("informer_relists_total"))
    reconciles = _delta(before, after, "controller_runtime_reconcile_total")
    lists = _delta(before, after, 'rest_client_requests_total{code="200",method="GET"')
    print(
        f"\n[chaos] API server restart after an etcd compaction, operator frozen meanwhile: "
        f"converged {took:.1f}s after; {relists:.0f} relists for {informers} informers, "
        f"{reconciles:.0f} reconciles, {lists:.0f} successful GETs (lists, gets, watches)"
    )
    # An informer whose version the restarted API server no longer serves lists once more
    # (410 Gone; the others resume their watch): at most once or twice each, never a storm.
    # What changed while the operator was away was carried out all the same (above).
    assert relists <= 2 * informers


def _delta(before: dict[str, float], after: dict[str, float], prefix: str) -> float:
    total = 0.0
    for name, value in after.items():
        if name.startswith(prefix):
            total += value - before.get(name, 0.0)
    return total


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("crds")
async def test_standby_operator_takes_over_within_the_lease(
    kube: Client, namespace: str, operator_kubeconfig: Path, log_dir: Path
) -> None:
    first = OperatorProcess(operator_kubeconfig, namespace, log_dir, leader_elect=True)
    second = OperatorProcess(operator_kubeconfig, namespace, log_dir, leader_elect=True)
    try:
        await first.start()
        await wait_for(first.leading, timeout=60, interval=0.2)
        await second.start()
        await kube.create(CLUSTERS, e2e_hippo(namespace))
        await ready_cluster(kube, namespace, timeout=300)
        # The standby cached everything and wrote nothing (but for reading the Lease).
        assert not await second.leading()
        assert await second.writes() == 0
        assert await first.writes() > 0

        killed = time.monotonic()
        await first.kill()
        await wait_for(second.leading, timeout=60, interval=0.1)
        took = time.monotonic() - killed
        # It reconciles from then on: a change is carried out, by it.
        patch = {"spec": {"metadata": {"labels": {"chaos": "takeover"}}}}
        await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
        await ready_cluster(kube, namespace, timeout=120)
        assert await second.writes() > 0
    finally:
        await first.kill()
        await second.kill()
    timings = LeaseTimings()
    print(
        f"\n[chaos] leader operator killed: the standby leads {took:.1f}s later "
        f"(lease duration {timings.lease_duration:g}s, retry period {timings.retry_period:g}s)"
    )
    # client-go's bound: the lease runs out, then the standby's next try (jittered) takes it.
    assert took <= timings.lease_duration + JITTER * timings.retry_period + 1
