"""Records core/v1 Events about objects, as `kubectl describe` shows them.

A repeated event (same object, type, reason and message) increments the `count` of the Event
already posted instead of adding another, so a reconcile loop that keeps meeting the same
problem writes one Event, not thousands.
"""

from __future__ import annotations

import datetime
import os
from collections import OrderedDict
from typing import Literal

import structlog

from reconciler.runtime.client import JSON, ApiError, Client, NotFoundError
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import EVENTS

log = structlog.get_logger(__name__)

EventType = Literal["Normal", "Warning"]
RULES = (
    Rule("", ("events",), ("create", "patch"), "Events are posted, and patched when they repeat."),
)
_REMEMBERED = 4096  # recent events kept for aggregation; older repeats post a new Event
_Key = tuple[str, str, str, str, str]  # involved object UID, field path, type, reason, message


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Posts Events as `component`; failures are logged, never raised to the reconcile."""

    def __init__(
        self, client: Client, component: str, *, instance: str = "", host: str = ""
    ) -> None:
        self.client = client
        self.component = component
        self.instance = instance or os.environ.get("HOSTNAME", "")
        self.host = host
        self._recent: OrderedDict[_Key, tuple[str, str, int]] = OrderedDict()

    async def event(
        self, obj: JSON, type_: EventType, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        """Record that `reason` (CamelCase) happened to `obj` (to its part at `field_path`, such
        as a pod's `spec.containers{name}`), described by `message`."""
        meta = obj["metadata"]
        key = (meta.get("uid", ""), field_path, type_, reason, message)
        try:
            if key in self._recent:
                await self._repeat(key)
            else:
                await self._post(key, obj, type_, reason, message)
        except (ApiError, ConnectionError) as error:
            log.warning("could not record an event", reason=reason, error=str(error))

    async def _repeat(self, key: _Key) -> None:
        namespace, name, count = self._recent[key]
        self._recent.move_to_end(key)
        try:
            await self.client.patch(
                EVENTS,
                name,
                {"count": count + 1, "lastTimestamp": _now()},
                namespace=namespace,
            )
        except NotFoundError:  # Events expire (an hour by default): start over
            del self._recent[key]
            raise
        self._recent[key] = (namespace, name, count + 1)

    async def _post(
        self, key: _Key, obj: JSON, type_: EventType, reason: str, message: str
    ) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        now = _now()
        involved: JSON = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if key[1]:
            involved["fieldPath"] = key[1]
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            # Named as client-go names them: the object's name and a unique suffix.
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        created = await self.client.create(EVENTS, event, namespace)
        self._recent[key] = (namespace, created["metadata"]["name"], 1)
        if len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)
