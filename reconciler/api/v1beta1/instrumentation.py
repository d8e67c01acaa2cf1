"""`spec.instrumentation`: an OpenTelemetry collector for logs and metrics."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from reconciler.api.base import PRESERVE_UNKNOWN_FIELDS, ApiModel
from reconciler.api.kubernetes import EnvVar, ResourceRequirements, VolumeProjection

# The collector's settings follow the OpenTelemetry collector's format, which grows with each
# release: the objects below name the fields we use and keep the others rather than prune them.


class InstrumentationConfig(ApiModel):
    """Configuration of the collector."""

    model_config = ConfigDict(json_schema_extra=PRESERVE_UNKNOWN_FIELDS)

    detectors: list[dict[str, Any]] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """Resource detectors that add attributes to every signal."""
    exporters: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS)
    """Exporters by name, in the collector's format."""
    files: list[VolumeProjection] | None = None
    """Extra files projected into the collector container."""
    environment_variables: list[EnvVar] | None = None
    """Environment variables of the collector container."""


class InstrumentationSignal(ApiModel):
    """Collection of one kind of signal (logs or metrics)."""

    model_config = ConfigDict(json_schema_extra=PRESERVE_UNKNOWN_FIELDS)

    exporters: list[str] | None = None
    """Names of the exporters (from `config.exporters`) the signal is sent to."""


class InstrumentationSpec(ApiModel):
    """Collect logs and metrics with an OpenTelemetry collector (feature gates
    `OpenTelemetryLogs` and `OpenTelemetryMetrics`)."""

    image: str | None = None
    """The collector image; defaults to the operator's `RELATED_IMAGE_COLLECTOR`."""
    resources: ResourceRequirements | None = None
    """Compute resources of the collector container."""
    config: InstrumentationConfig | None = None
    """Configuration of the collector."""
    logs: InstrumentationSignal | None = None
    """Log collection."""
    metrics: InstrumentationSignal | None = None
    """Metric collection."""
