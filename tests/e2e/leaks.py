"""No secret in a log or an Event: after each e2e test, the passwords, verifiers and private
keys of the Secrets in its namespace are looked for in the operator's log of the test, in the
logs of every container still there, and in every Event of the namespace."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from reconciler.runtime.client import JSON, ApiError, Client
from reconciler.runtime.resources import EVENTS, PODS, SECRETS

# Shorter values (a port, a user name) would match by chance.
_SHORTEST = 12
_SECRET_KEY = re.compile(r"password|verifier|\.key$|-key$|users\.txt$", re.IGNORECASE)
_PEM_BODY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(.*?)-----END", re.DOTALL)


class LogTap(logging.Handler):
    """Every line the operator logs (structlog's events, the standard library's records), kept
    in order to be searched: a structlog processor and a logging handler at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        self.lines.append(repr(dict(event)))
        return event

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def install(self) -> None:
        """Tap structlog's processors (first, so every event is seen whole) and the root logger."""
        processors = list(structlog.get_config()["processors"])
        structlog.configure(processors=[self, *processors])
        logging.getLogger().addHandler(self)


def secret_values(secrets: list[JSON]) -> dict[str, str]:
    """What must never be printed, by `secret/key`: passwords and verifiers whole, and of each
    private key the longest line of its PEM body (a log may show a key folded differently)."""
    found: dict[str, str] = {}
    for secret in secrets:
        for key, encoded in (secret.get("data") or {}).items():
            text = base64.b64decode(encoded).decode("utf-8", "replace")
            where = f"{secret['metadata']['name']}/{key}"
            if body := _PEM_BODY.search(text):
                found[where] = max(body.group(1).split(), key=len)
            elif _SECRET_KEY.search(key) and len(text) >= _SHORTEST:
                found[where] = text
    return {where: value for where, value in found.items() if len(value) >= _SHORTEST}


async def search(kube: Client, namespace: str, operator_log: list[str]) -> list[str]:
    """Where a secret of the namespace was found: `<place> shows <secret/key>`."""
    values = secret_values((await kube.list(SECRETS, namespace)).items)
    if not values:
        return []
    places: dict[str, str] = {"operator log": "\n".join(operator_log)}
    for event in (await kube.list(EVENTS, namespace)).items:
        object_ = event.get("involvedObject") or {}
        places[f"Event {event['metadata']['name']} on {object_.get('name')}"] = (
            f"{event.get('reason')} {event.get('message')}"
        )
    for pod in (await kube.list(PODS, namespace)).items:
        spec = pod["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            name = f"{pod['metadata']['name']}/{container['name']}"
            try:
                places[f"log of {name}"] = await _log(kube, namespace, pod, container["name"])
            except ApiError:
                continue  # not started yet, or gone: nothing it printed is kept
    return [
        f"{place} shows {where}"
        for place, text in places.items()
        for where, value in values.items()
        if value in text
    ]


async def _log(kube: Client, namespace: str, pod: JSON, container: str) -> str:
    path = f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/log"
    data = await kube.request_bytes("GET", path, params={"container": container})
    return data.decode("utf-8", "replace")
