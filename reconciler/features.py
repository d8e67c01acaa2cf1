"""PGO's feature gates, with PGO's names and v5.8 defaults, parsed from `PGO_FEATURE_GATES`;
and the gates of this operator's own features, off by default."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Name -> default, as PGO v5.8 declares them (internal/feature/features.go).
DEFAULTS: Mapping[str, bool] = MappingProxyType(
    {
        "AppendCustomQueries": False,
        "AutoCreateUserSchema": True,
        "AutoGrowVolumes": False,
        "BridgeIdentifiers": False,
        "InstanceSidecars": True,
        "OpenTelemetryLogs": False,
        "OpenTelemetryMetrics": False,
        "PGBouncerSidecars": False,
        "PGUpgradeCPUConcurrency": True,
        "TablespaceVolumes": False,
        "VolumeSnapshots": False,
        # Ours, not PGO's: node-loss recovery (steps/node_loss.py; README).
        "InstanceNodeLossRecovery": False,
    }
)

FORM = "Name=true|false[,Name=true|false...] with Name one of " + ", ".join(DEFAULTS)


class FeatureGateError(ValueError):
    """`PGO_FEATURE_GATES` names an unknown gate or gives a value that is not a boolean."""


def parse(text: str) -> dict[str, bool]:
    """Every gate's state: the defaults overridden by `text` (`Name=true,Other=false`)."""
    gates = dict(DEFAULTS)
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip().lower()
        if not sep or name not in DEFAULTS:
            raise FeatureGateError(f"unknown feature gate {name!r}")
        if value not in ("true", "false"):
            raise FeatureGateError(f"feature gate {name} has value {value!r}, not true or false")
        gates[name] = value == "true"
    return gates
