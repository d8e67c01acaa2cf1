"""Why a Job of the cluster failed, in a line: the error lines of its last pod's log, read
through the API (`pods/log`), for the condition and Event that report it."""

from __future__ import annotations

from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON, ApiError
from reconciler.runtime.resources import PODS

# The label the Job controller gives a Job's pods.
_JOB_UID = "batch.kubernetes.io/controller-uid"


def failure_summary(log: str, limit: int = 3) -> str:
    """The last error lines of a log (pgBackRest's `ERROR:`, PostgreSQL's `FATAL:`, a shell's
    message), the log's last line when it has none."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line or "FATAL:" in line]
    chosen = errors[-limit:] or lines[-1:]
    return " | ".join(line[:400] for line in chosen) or "no output"


async def job_error(ctx: Context, job: JSON, container: str) -> str:
    """The error of `job`'s last pod, from the log of its `container`."""
    pods = ctx.cluster_objects(PODS, {_JOB_UID: job["metadata"]["uid"]})
    if not pods:
        return f"Job {job['metadata']['name']} failed (its pods are gone)"
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    path = PODS.path(ctx.namespace, pod["metadata"]["name"], "log")
    params = {"container": container, "tailLines": "200"}
    try:
        text = await ctx.client.request_bytes("GET", path, params=params, resource="pods/log")
    except (ApiError, ConnectionError) as error:
        return f"Job {job['metadata']['name']} failed; its log could not be read: {error}"
    return failure_summary(text.decode(errors="replace"))
