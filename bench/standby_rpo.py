"""RPO of a standby cluster fed by an S3 repository: commits lost when the primary is lost.

    .venv/bin/reconciler-envtest isolated -- .venv/bin/python -m bench.standby_rpo
    # --rounds 3 --archive-timeout 60 --archive-timeout 10

Starts its own control plane with the process node (real PostgreSQL 15, Patroni, pgBackRest),
the S3 object store of the e2e tier, and the operator in-process. Per round, in a namespace of
its own, the e2e test's set-up (`tests/e2e/test_standby.py`): hippo with an S3 repository,
hippo-dr its standby from the same bucket and path; then a client commits one row at a time
to hippo for a window, hippo's only instance is lost (every process killed, none restarted),
and hippo-dr is promoted. Reported per round: seconds of acknowledged commits that hippo-dr
lacks (the RPO), how many commits, and the promotion (from `standby.enabled: false` to the
first write). The window grows over the rounds (1.17, 1.5, 1.83 times `archive_timeout` for
three), so that the loss falls at different points of the archive_timeout cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

from reconciler_envtest import ControlPlane, images, objectstore

from bench.hippo_requests import operator
from reconciler.api import crd
from reconciler.config import Settings
from reconciler.runtime.client import Client, ConflictError
from reconciler.runtime.resources import ENDPOINTS, NAMESPACES, SECRETS, SERVICES
from tests.e2e.test_s3_backups import credentials
from tests.e2e.test_standby import BUCKET, Recovery, disaster, standby_pair


async def _namespace(kube: Client, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    with contextlib.suppress(ConflictError):
        await kube.create(NAMESPACES, body)


async def _round(
    kube: Client, plane: ControlPlane, store: objectstore.ObjectStore, name: str, **how: float
) -> Recovery:
    await _namespace(kube, name)
    await kube.create(SECRETS, credentials(name, store))
    timeout = int(how["archive_timeout"])
    await standby_pair(kube, name, plane, {"archive_timeout": f"{timeout}s"})
    recovery = await disaster(kube, name, plane, how["window"])
    await kube.delete(NAMESPACES, name)  # frees the machine for the next round
    return recovery


async def main(rounds: int, timeouts: list[int]) -> None:
    """Run `rounds` rounds per archive_timeout and print each."""
    with tempfile.TemporaryDirectory(prefix="bench-standby-") as scratch:
        async with (
            ControlPlane(Path(scratch), process_node=True) as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
        ):
            assert plane.pod_network is not None
            store = objectstore.ObjectStore(plane.run_dir, plane.pod_network.gateway, [BUCKET])
            await store.start()
            try:
                await _namespace(kube, objectstore.NAMESPACE)
                for resource, body in zip((SERVICES, ENDPOINTS), store.service(), strict=True):
                    await kube.create(resource, body)
                await crd.install(kube, field_manager="bench")
                related = {
                    k.removeprefix("RELATED_IMAGE_"): v for k, v in images.related_images().items()
                }
                async with operator(plane.kubeconfig, Settings(images=related, workers=2)):
                    for timeout in timeouts:
                        for i in range(rounds):
                            window = timeout * (1 + (i + 0.5) / rounds)
                            name = f"rpo-{timeout}s-{i}"
                            recovery = await _round(
                                kube, plane, store, name, archive_timeout=timeout, window=window
                            )
                            print(
                                f"archive_timeout {timeout}s, primary lost after {window:.0f}s "
                                f"of commits: {recovery}",
                                flush=True,
                            )
            finally:
                await store.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--archive-timeout", type=int, action="append", dest="timeouts")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.timeouts or [60, 10]))
