"""The operator's settings, read from the environment variables PGO reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler import features

DEFAULT_NAMESPACE = "postgres-operator"
DEFAULT_LEASE_NAME = "cpk-leader-election-lease"
DEFAULT_WORKERS = 2
# Ours (node-loss recovery): how long a node stays NotReady before its instances count as lost.
DEFAULT_NODE_LOSS_AFTER = 300.0
RELATED_IMAGE_PREFIX = "RELATED_IMAGE_"

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# PGO splits the namespace lists on every rune that is not '-', a letter or a digit.
_NAMESPACE_SEPARATORS = re.compile(r"[^-A-Za-z0-9]+")


class ConfigError(ValueError):
    """An environment variable has a value the operator cannot use."""

    def __init__(self, variable: str, value: str, form: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: expected {form}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the environment decides about the operator process."""

    target_namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    feature_gates: Mapping[str, bool] = field(default_factory=lambda: dict(features.DEFAULTS))
    workers: int = DEFAULT_WORKERS
    namespace: str = DEFAULT_NAMESPACE
    lease_name: str = DEFAULT_LEASE_NAME
    leader_elect: bool = True
    debug: bool = False
    images: Mapping[str, str] = field(default_factory=dict)
    node_loss_after: float = DEFAULT_NODE_LOSS_AFTER  # PGO_NODE_LOSS_AFTER_SECONDS


def from_environment(env: Mapping[str, str]) -> Settings:
    """Settings from `env`; raises `ConfigError` naming the first invalid variable."""
    namespaces: set[str] = set()
    for variable in ("PGO_TARGET_NAMESPACE", "PGO_TARGET_NAMESPACES"):
        for name in _NAMESPACE_SEPARATORS.split(env.get(variable, "")):
            if name and not _is_dns1123_label(name):
                raise ConfigError(
                    variable, env[variable], "namespace names separated by commas or spaces"
                )
            if name:
                namespaces.add(name)

    gates_text = env.get("PGO_FEATURE_GATES", "")
    try:
        gates = features.parse(gates_text)
    except features.FeatureGateError as error:
        raise ConfigError("PGO_FEATURE_GATES", gates_text, f"{features.FORM} ({error})") from None

    workers_text = env.get("PGO_WORKERS", "").strip()
    workers = DEFAULT_WORKERS
    if workers_text:
        if not workers_text.isdigit() or int(workers_text) < 1:
            raise ConfigError("PGO_WORKERS", workers_text, "an integer greater than 0")
        workers = int(workers_text)

    namespace = env.get("PGO_NAMESPACE", "").strip() or DEFAULT_NAMESPACE
    if not _is_dns1123_label(namespace):
        raise ConfigError("PGO_NAMESPACE", namespace, "a namespace name (DNS-1123 label)")

    lease_name = env.get("PGO_CONTROLLER_LEASE_NAME", "").strip() or DEFAULT_LEASE_NAME
    if len(lease_name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(lease_name):
        raise ConfigError(
            "PGO_CONTROLLER_LEASE_NAME",
            lease_name,
            "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')",
        )

    debug_text = env.get("CRUNCHY_DEBUG", "").strip().lower()
    if debug_text not in ("", "true", "false"):
        raise ConfigError("CRUNCHY_DEBUG", debug_text, "true or false")

    node_loss_text = env.get("PGO_NODE_LOSS_AFTER_SECONDS", "").strip()
    node_loss_after = DEFAULT_NODE_LOSS_AFTER
    if node_loss_text:
        if not node_loss_text.isdigit() or int(node_loss_text) < 1:
            raise ConfigError(
                "PGO_NODE_LOSS_AFTER_SECONDS", node_loss_text, "a whole number of seconds above 0"
            )
        node_loss_after = float(node_loss_text)

    return Settings(
        target_namespaces=tuple(sorted(namespaces)),
        feature_gates=gates,
        workers=workers,
        namespace=namespace,
        lease_name=lease_name,
        debug=debug_text == "true",
        images={
            key.removeprefix(RELATED_IMAGE_PREFIX): value
            for key, value in env.items()
            if key.startswith(RELATED_IMAGE_PREFIX) and value
        },
        node_loss_after=node_loss_after,
    )


def _is_dns1123_label(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) is not None
