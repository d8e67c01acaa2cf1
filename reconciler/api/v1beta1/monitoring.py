"""`spec.monitoring`: the Prometheus exporter of pgMonitor."""

from __future__ import annotations

from pydantic import Field

from reconciler.api.base import ApiModel
from reconciler.api.kubernetes import ResourceRequirements, SecretProjection, VolumeProjection


class ExporterSpec(ApiModel):
    """The `exporter` container of every instance pod, serving metrics on port 9187."""

    configuration: list[VolumeProjection] | None = None
    """Extra exporter configuration (e.g. custom queries), projected into the container."""
    custom_tls_secret: SecretProjection | None = Field(None, alias="customTLSSecret")
    """A Secret with `tls.crt` and `tls.key`; the exporter then serves metrics over HTTPS."""
    image: str | None = None
    """The exporter image; defaults to the operator's `RELATED_IMAGE_PGEXPORTER`."""
    resources: ResourceRequirements | None = None
    """Compute resources of the exporter container."""


class PGMonitorSpec(ApiModel):
    """pgMonitor, Crunchy Data's monitoring stack."""

    exporter: ExporterSpec | None = None
    """The Prometheus exporter."""


class MonitoringSpec(ApiModel):
    """Metrics of the cluster."""

    pgmonitor: PGMonitorSpec | None = None
    """pgMonitor settings."""
