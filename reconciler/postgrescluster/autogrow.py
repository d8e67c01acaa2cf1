"""Volume auto-grow (the AutoGrowVolumes gate), PGO's rules as pure decisions.

An instance pod reports on itself, in `suggested-pgdata-pvc-size`, the size its data volume
should grow to (scripts.REPLICATION_CERT_COPY). The controller keeps each instance's suggestion
in `status.instances[].desiredPGDataVolume` (a restarted pod has lost its annotation), and sizes
every data volume of the set to the largest suggestion, never above the set's
`dataVolumeClaimSpec.resources.limits.storage`: without that limit nothing grows. A request
above the limit is brought down to it, with the gate or without, as PGO does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from reconciler import naming
from reconciler.postgrescluster.observed import instance_of, instance_set_of
from reconciler.runtime import quantity
from reconciler.runtime.client import JSON

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class Event:
    """An Event to record on the cluster."""

    type: EventType
    reason: str
    message: str


def _size(text: str | None) -> Decimal | None:
    """A positive storage quantity, or None (absent, zero, or not a quantity)."""
    if not text:
        return None
    value = quantity.parse(text)
    return value if value is not None and value > 0 else None


def limit_of(instance_set: JSON) -> Decimal | None:
    """The set's growth ceiling, `dataVolumeClaimSpec.resources.limits.storage`."""
    resources = (instance_set.get("dataVolumeClaimSpec") or {}).get("resources") or {}
    return _size((resources.get("limits") or {}).get("storage"))


def desired_sizes(
    pods: Iterable[JSON], previous: Mapping[str, Mapping[str, str]], instances: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Per set, per instance: the size its pod suggests, else the one status kept (the pod
    restarted, or is not there). Only instances that still exist (`instances`) are kept; a
    suggestion that is not a quantity is ignored."""
    existing = set(instances)
    desired: dict[str, dict[str, str]] = {}
    for set_name, sizes in previous.items():
        for instance, size in sizes.items():
            if instance in existing and _size(size) is not None:
                desired.setdefault(set_name, {})[instance] = size
    for pod in pods:
        suggested = (pod["metadata"].get("annotations") or {}).get(
            naming.ANNOTATION_SUGGESTED_PGDATA_SIZE
        )
        if _size(suggested) is not None and instance_of(pod) in existing:
            desired.setdefault(instance_set_of(pod), {})[instance_of(pod)] = str(suggested)
    return desired


def stored_sizes(instances_status: Iterable[JSON]) -> dict[str, dict[str, str]]:
    """`desiredPGDataVolume` of each set in `status.instances`."""
    return {
        str(entry["name"]): dict(entry["desiredPGDataVolume"])
        for entry in instances_status
        if entry.get("desiredPGDataVolume")
    }


def with_desired(
    instances_status: list[JSON], desired: Mapping[str, Mapping[str, str]]
) -> list[JSON]:
    """`status.instances` with each set's `desiredPGDataVolume` (left out when empty)."""
    return [
        {**entry, "desiredPGDataVolume": dict(desired[entry["name"]])}
        if desired.get(entry["name"])
        else entry
        for entry in instances_status
    ]


def growth_events(
    cluster: str,
    instance_sets: Iterable[JSON],
    desired: Mapping[str, Mapping[str, str]],
    previous: Mapping[str, Mapping[str, str]],
) -> list[Event]:
    """`VolumeAutoGrow` for each instance whose suggestion grew, in sets with a limit."""
    events = []
    for instance_set in instance_sets:
        if limit_of(instance_set) is None:
            continue
        name = instance_set["name"]
        for instance, size in sorted((desired.get(name) or {}).items()):
            before = _size((previous.get(name) or {}).get(instance)) or Decimal(0)
            if (_size(size) or Decimal(0)) > before:
                events.append(
                    Event(
                        "Normal",
                        naming.REASON_VOLUME_AUTO_GROW,
                        f"Growing the pgData volume of {cluster}/{name} to {size}, as "
                        f"instance {instance} asks (it is more than 75% full).",
                    )
                )
    return events


@dataclass(frozen=True, slots=True)
class Sizing:
    """The data volumes' request for one set: None keeps the spec's; the Events go with a
    change of the claims' request."""

    request: str | None
    events: tuple[Event, ...] = field(default=())


def data_volume_size(
    cluster: str, instance_set: JSON, desired: Iterable[str], *, enabled: bool
) -> Sizing:
    """The request of the set's data volumes: the spec's request, brought down to the limit
    when above it; with the gate on and a limit set, the largest suggestion when larger, up
    to the limit."""
    limit = limit_of(instance_set)
    if limit is None:
        return Sizing(None)
    name = instance_set["name"]
    resources = (instance_set.get("dataVolumeClaimSpec") or {}).get("resources") or {}
    requested_text = str((resources.get("requests") or {}).get("storage") or "")
    request = _size(requested_text) or Decimal(0)
    limit_text = quantity.format_binary(int(limit))
    if request > limit:
        return Sizing(
            limit_text,
            (
                Event(
                    "Warning",
                    naming.REASON_VOLUME_REQUEST_OVER_LIMIT,
                    f"The pgData volume request of {cluster}/{name} ({requested_text}) is above "
                    f"its limit ({limit_text}): the limit is used. Lower "
                    "dataVolumeClaimSpec.resources.requests.storage, or raise the limit.",
                ),
            ),
        )
    if not enabled:
        return Sizing(None)
    wanted = max([request, *(s for s in map(_size, desired) if s is not None)])
    if wanted < limit:
        return Sizing(quantity.format_binary(int(wanted)))
    events = [
        Event(
            "Normal",
            naming.REASON_VOLUME_LIMIT_REACHED,
            f"The pgData volumes of {cluster}/{name} are at their size limit ({limit_text}).",
        )
    ]
    if wanted > limit:
        events.append(
            Event(
                "Warning",
                naming.REASON_DESIRED_VOLUME_ABOVE_LIMIT,
                f"The pgData volumes of {cluster}/{name} would grow to "
                f"{quantity.format_binary(int(wanted))}, above their limit ({limit_text}); "
                "raise dataVolumeClaimSpec.resources.limits.storage to let them grow.",
            )
        )
    return Sizing(limit_text, tuple(events))
