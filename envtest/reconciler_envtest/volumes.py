"""A pod's volumes as files: the contents a kubelet would project, and how it writes them.

`files` turns one volume of the pod spec (configMap, secret, projected, downwardAPI) into
`{relative path: (bytes, mode)}`; it is pure, so every rule (items, modes, optional sources,
downward API formats) is tested without I/O. `write_atomically` publishes those files the way a
kubelet does, through a `..data` symlink swapped in one rename, so that a process reading a
mounted directory never sees half of an update.
"""

from __future__ import annotations

import base64
import datetime
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.runtime import quantity

JSON = dict[str, Any]
Files = dict[str, tuple[bytes, int]]
# (kind, namespace, name) -> the object, or None when it does not exist.
Lookup = Callable[[str, str, str], JSON | None]
# A serviceAccountToken source -> the token (requested beforehand by the caller).
TokenFor = Callable[[JSON], str]

DEFAULT_MODE = 0o644


class VolumeError(RuntimeError):
    """A volume cannot be set up yet (a missing ConfigMap or Secret, a key not in it)."""


def key_data(obj: JSON, kind: str) -> dict[str, bytes]:
    """A ConfigMap's or Secret's keys with their bytes."""
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _object_files(source: JSON, kind: str, namespace: str, lookup: Lookup, mode: int) -> Files:
    name = source.get("secretName") or source.get("name")
    obj = lookup(kind, namespace, str(name))
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data = key_data(obj, kind)
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    result: Files = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f'{kind.lower()} "{name}" has no key "{item["key"]}"')
        result[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return result


def _labels_text(values: Mapping[str, str]) -> bytes:
    # The kubelet's format: one `key="value"` per line, sorted, values Go-quoted.
    lines = []
    for key in sorted(values):
        escaped = values[key].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines).encode()


def field_value(pod: JSON, path: str) -> str:
    """A `fieldRef` of the downward API (env or volume), as the kubelet renders it."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIPs": ",".join(a["ip"] for a in status.get("podIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    if path == "metadata.labels":
        return _labels_text(meta.get("labels") or {}).decode()
    if path == "metadata.annotations":
        return _labels_text(meta.get("annotations") or {}).decode()
    for prefix, values in (
        ("metadata.labels['", meta.get("labels") or {}),
        ("metadata.annotations['", meta.get("annotations") or {}),
    ):
        if path.startswith(prefix) and path.endswith("']"):
            return str(values.get(path[len(prefix) : -2], ""))
    raise VolumeError(f"unsupported fieldRef {path!r}")


def resource_value(pod: JSON, ref: JSON, default_container: str | None = None) -> str:
    """A `resourceFieldRef`: the container's request or limit divided by the divisor, rounded
    up; an unset limit reads as the node's allocatable, as with a kubelet (here: unbounded)."""
    name = ref.get("containerName") or default_container
    container = next((c for c in pod["spec"]["containers"] if c["name"] == name), None)
    if container is None:
        raise VolumeError(f"resourceFieldRef names no container {name!r}")
    kind, _, resource = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    if value is None:
        # Node allocatable of the process node (node_status): 64 CPUs, 256 GiB.
        value = "64" if resource == "cpu" else "256Gi"
    amount = quantity.parse(str(value))
    divisor = quantity.parse(str(ref.get("divisor") or "1"))
    if amount is None or divisor is None:
        raise VolumeError(f"cannot read {ref['resource']} of container {name!r}")
    # A zero divisor is an unset one (Go's zero Quantity is stored as "0"): units of one.
    return str(math.ceil(amount / (divisor or 1)))


def _downward_files(items: list[JSON], pod: JSON, mode: int) -> Files:
    result: Files = {}
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            value = resource_value(pod, item["resourceFieldRef"])
        result[item["path"]] = (value.encode(), item.get("mode", mode))
    return result


def files(volume: JSON, pod: JSON, lookup: Lookup, token_for: TokenFor) -> Files | None:
    """The files of a projected kind of volume, or None for a volume of another kind."""
    namespace = pod["metadata"]["namespace"]
    for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
        if key in volume:
            source = volume[key]
            mode = source.get("defaultMode", DEFAULT_MODE)
            return _object_files(source, kind, namespace, lookup, mode)
    if "downwardAPI" in volume:
        source = volume["downwardAPI"]
        return _downward_files(source.get("items") or [], pod, source.get("defaultMode", 0o644))
    if "projected" not in volume:
        return None
    projected = volume["projected"]
    mode = projected.get("defaultMode", DEFAULT_MODE)
    result: Files = {}
    for source in projected.get("sources") or []:
        if "configMap" in source:
            result.update(_object_files(source["configMap"], "ConfigMap", namespace, lookup, mode))
        elif "secret" in source:
            result.update(_object_files(source["secret"], "Secret", namespace, lookup, mode))
        elif "downwardAPI" in source:
            result.update(_downward_files(source["downwardAPI"].get("items") or [], pod, mode))
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            result[token["path"]] = (token_for(token).encode(), mode)
        elif "clusterTrustBundle" in source:
            raise VolumeError("clusterTrustBundle projections are not supported by this node")
    return result


def write_atomically(directory: Path, contents: Files, *, uid: int, gid: int) -> bool:
    """Publish `contents` in `directory` through a `..data` symlink; False when unchanged.

    Files belong to `uid` (root, as with a kubelet) and `gid` (the pod's fsGroup); the group
    gets read access wherever the owner has it, as a kubelet's ownership change gives.
    """
    current = directory / "..data"
    if current.exists() and _same(current, contents):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    # Unique names, as two writers of one directory must never share a staging entry.
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    fresh = Path(tempfile.mkdtemp(prefix=f"{stamp}_", dir=directory))
    for relative, (data, mode) in contents.items():
        target = fresh / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chown(target, uid, gid)
        os.chmod(target, mode | ((mode & 0o400) >> 3))
    for folder in [fresh, *(p for p in fresh.rglob("*") if p.is_dir())]:
        os.chown(folder, uid, gid)
        folder.chmod(0o755)
    staged = directory / f"..data_tmp{fresh.name}"
    staged.symlink_to(fresh.name)
    previous = os.readlink(current) if current.is_symlink() else None
    staged.rename(current)
    wanted = {relative.split("/", 1)[0] for relative in contents}
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in wanted:
            entry.unlink()
    for top in wanted:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    if previous:
        shutil.rmtree(directory / previous, ignore_errors=True)
    return True


def _same(current: Path, contents: Files) -> bool:
    present = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
    if present != set(contents):
        return False
    return all((current / path).read_bytes() == data for path, (data, _) in contents.items())
