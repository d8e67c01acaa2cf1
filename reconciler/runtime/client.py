"""An async Kubernetes API client that speaks raw JSON.

kubernetes-asyncio supplies the configuration (kubeconfig or in-cluster, with token refresh), the
TLS context and the authentication headers; everything else is ours, because its generated model
classes cost memory and time that an operator caching thousands of objects cannot afford. Objects
are plain dicts parsed with orjson.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from reconciler.runtime import metrics
from reconciler.runtime.resources import Resource

JSON = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]

_PATCH_CONTENT_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# A request that hangs must not hang a worker: connect quickly or fail, and give the server a
# bounded time to answer. Watches set their own read timeout from the server-side timeout.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_RETRIES = 5
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, body: JSON | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}

    @classmethod
    def from_response(cls, status: int, data: bytes) -> ApiError:
        """Build the most specific error for a failed response body (a v1 Status, usually)."""
        try:
            body = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            body = {"message": data.decode("utf-8", "replace")}
        if not isinstance(body, dict):
            body = {"message": str(body)}
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
        error_type = _ERRORS_BY_STATUS.get(status, ApiError)
        return error_type(status, reason, message, body)


class NotFoundError(ApiError):
    """404: the object or the resource does not exist."""


class ConflictError(ApiError):
    """409: a conflicting write (stale resourceVersion, failed precondition, already exists)."""


class GoneError(ApiError):
    """410: the requested resourceVersion is too old; a watch must relist."""


class InvalidError(ApiError):
    """422: the object failed validation; the message names the field and the rule."""


_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
}


@dataclass(frozen=True, slots=True)
class ObjectList:
    """The items of a LIST and the resourceVersion it was read at."""

    items: list[JSON]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."""

    type: str
    object: JSON


async def load_configuration(kubeconfig: str | None = None) -> k8s_client.Configuration:
    """Load in-cluster configuration, or the kubeconfig named (or the default one)."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            pass
        else:
            return configuration
    await k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


class Client:
    """Sends requests to one API server; one instance per process, used by every task."""

    def __init__(self, configuration: k8s_client.Configuration, *, user_agent: str) -> None:
        # ApiClient builds the aiohttp session with the TLS context of the configuration; it must
        # be created inside the running event loop.
        self._api = k8s_client.ApiClient(configuration)
        # Requests this client sent, by (method, resource): what tests and benchmarks count.
        # The Prometheus counter aggregates every client of the process.
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self._session: aiohttp.ClientSession = self._api.rest_client.pool_manager
        self._host = str(configuration.host).rstrip("/")
        self._server_hostname: str | None = configuration.tls_server_name
        self._user_agent = user_agent

    @classmethod
    async def from_kubeconfig(cls, kubeconfig: str | None = None, *, user_agent: str) -> Self:
        """A client for the given kubeconfig, or in-cluster, or the default kubeconfig."""
        return cls(await load_configuration(kubeconfig), user_agent=user_agent)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._api.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _observe(self, method: str, resource: str, code: str, started: float) -> None:
        self.requests[method, resource] += 1
        metrics.observe_request(method, resource, code, time.monotonic() - started)

    def writes(self) -> int:
        """How many write requests (POST, PUT, PATCH, DELETE) this client has sent."""
        return sum(n for (method, _), n in self.requests.items() if method in _WRITE_METHODS)

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        await self._api.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object | None = None,
        content_type: str | None = None,
        resource: str = "",
    ) -> JSON:
        """Send one request and return the decoded JSON answer.

        429 and 5xx answers (and connection failures) are retried with exponential backoff,
        honouring Retry-After; every other error status raises the matching `ApiError`.
        """
        payload = await self.request_bytes(
            method, path, params=params, body=body, content_type=content_type, resource=resource
        )
        result: JSON = orjson.loads(payload) if payload else {}
        return result

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object | None = None,
        content_type: str | None = None,
        resource: str = "",
    ) -> bytes:
        """`request`, returning the answer's bytes undecoded (a pod's log is text)."""
        data = orjson.dumps(body) if body is not None else None
        if data is not None and content_type is None:
            content_type = "application/json"
        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                async with self._session.request(
                    method,
                    self._host + path,
                    params=params,
                    data=data,
                    headers=await self._headers(content_type),
                    timeout=timeout,
                    server_hostname=self._server_hostname,
                ) as response:
                    payload = await response.read()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                self._observe(method, resource, "<error>", started)
                if attempt > MAX_RETRIES:
                    raise ConnectionError(f"{method} {path}: {error!r}") from error
                await asyncio.sleep(_backoff(attempt, None))
                continue
            self._observe(method, resource, str(status), started)
            if status < 400:
                return payload
            if (status == 429 or status >= 500) and attempt <= MAX_RETRIES:
                await asyncio.sleep(_backoff(attempt, retry_after))
                continue
            raise ApiError.from_response(status, payload)

    @contextlib.asynccontextmanager
    async def websocket(
        self, path: str, *, params: Sequence[tuple[str, str]], protocols: Sequence[str]
    ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """A WebSocket to the API server (a pod's `exec`, `attach` or `portforward`), with the
        client's credentials; `ApiError` when the server refuses the upgrade."""
        started = time.monotonic()
        try:
            async with self._session.ws_connect(
                self._host + path,
                params=list(params),
                protocols=tuple(protocols),
                headers=await self._headers(None),
                server_hostname=self._server_hostname,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
            ) as socket:
                self._observe("GET", path.rsplit("/", 1)[-1], "101", started)
                yield socket
        except aiohttp.WSServerHandshakeError as error:
            self._observe("GET", path.rsplit("/", 1)[-1], str(error.status), started)
            raise ApiError(error.status, "", error.message) from error

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        """Read one object; raises `NotFoundError` when it does not exist."""
        return await self.request("GET", resource.path(namespace, name), resource=str(resource))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        page_size: int = 500,
    ) -> ObjectList:
        """List every object in pages of `page_size`; items get their `apiVersion` and `kind`."""
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version is not None:
            # "0" reads from the watch cache; any other version asks for that state or newer.
            params["resourceVersion"] = resource_version
            if resource_version != "0":
                params["resourceVersionMatch"] = "NotOlderThan"
        items: list[JSON] = []
        while True:
            page = await self.request(
                "GET", resource.path(namespace), params=params, resource=str(resource)
            )
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return ObjectList(items, str(meta.get("resourceVersion", "")))
            # Later pages continue the snapshot of the first; a version may not be repeated.
            params.pop("resourceVersion", None)
            params.pop("resourceVersionMatch", None)
            params["continue"] = token

    async def create(self, resource: Resource, obj: JSON, namespace: str | None = None) -> JSON:
        """Create an object; raises `ConflictError` when it already exists."""
        namespace = namespace or obj.get("metadata", {}).get("namespace")
        return await self.request(
            "POST", resource.path(namespace), body=obj, resource=str(resource)
        )

    async def apply(
        self,
        resource: Resource,
        obj: JSON,
        *,
        field_manager: str,
        force: bool = True,
        subresource: str | None = None,
    ) -> JSON:
        """Server-side apply `obj` (which names itself) as `field_manager`."""
        meta = obj["metadata"]
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return await self.request(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"], subresource),
            params=params,
            body=obj,
            content_type=_APPLY_CONTENT_TYPE,
            resource=str(resource),
        )

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: object,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> JSON:
        """Patch an object (or a subresource such as `status`) with a merge, JSON or SMP patch."""
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            params=params,
            body=patch,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
            resource=str(resource),
        )

    async def replace(
        self, resource: Resource, obj: JSON, *, subresource: str | None = None
    ) -> JSON:
        """PUT an object; its `metadata.resourceVersion` makes the write conditional."""
        meta = obj["metadata"]
        return await self.request(
            "PUT",
            resource.path(meta.get("namespace"), meta["name"], subresource),
            body=obj,
            resource=str(resource),
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: Literal["Foreground", "Background", "Orphan"] | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON:
        """Delete an object, optionally only if its UID or resourceVersion still match."""
        options: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        if preconditions:
            options["preconditions"] = preconditions
        if propagation:
            options["propagationPolicy"] = propagation
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        return await self.request(
            "DELETE", resource.path(namespace, name), body=options, resource=str(resource)
        )

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Stream the changes after `resource_version` until the server closes the watch.

        Raises `GoneError` when the version is too old (the caller relists) and `ApiError` for
        any other ERROR event. The socket read timeout is a little longer than the server's, so
        a half-open connection cannot hang the stream forever.
        """
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        timeout = aiohttp.ClientTimeout(
            sock_connect=CONNECT_TIMEOUT, sock_read=timeout_seconds + 30
        )
        started = time.monotonic()
        async with self._session.get(
            self._host + resource.path(namespace),
            params=params,
            headers=await self._headers(None),
            timeout=timeout,
            server_hostname=self._server_hostname,
        ) as response:
            self._observe("WATCH", str(resource), str(response.status), started)
            if response.status >= 400:
                raise ApiError.from_response(response.status, await response.read())
            # Split lines ourselves: aiohttp's readline refuses lines longer than its buffer,
            # and a large Secret can exceed it once base64 and JSON have grown it.
            pending = b""
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _watch_event(line, resource)


def _watch_event(line: bytes, resource: Resource) -> WatchEvent:
    event = orjson.loads(line)
    kind = event.get("type", "")
    obj = event.get("object") or {}
    if kind == "ERROR":
        status = int(obj.get("code") or 500)
        raise ApiError.from_response(status, orjson.dumps(obj))
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    return WatchEvent(kind, obj)


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    delay: float = min(0.1 * 2 ** (attempt - 1), 5.0)
    return delay * random.uniform(0.8, 1.2)
