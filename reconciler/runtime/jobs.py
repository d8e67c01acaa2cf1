"""Reading a Job's progress, as the Job controller reports it."""

from __future__ import annotations

from reconciler.runtime.client import JSON


def finished(job: JSON) -> str | None:
    """`Complete` or `Failed` once the Job controller says so, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def record(entry: JSON, job: JSON) -> None:
    """Copy a Job's progress into a status entry with PGO's fields (`startTime`,
    `completionTime`, `active`, `succeeded`, `failed`, `finished`)."""
    status = job.get("status") or {}
    for key in ("startTime", "completionTime"):
        if status.get(key):
            entry[key] = status[key]
    for key in ("active", "succeeded", "failed"):
        if status.get(key) is not None:
            entry[key] = status[key]
    entry["finished"] = finished(job) is not None
