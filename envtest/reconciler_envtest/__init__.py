"""A real Kubernetes control plane on this machine, for tests, benchmarks and the demo."""

from reconciler_envtest.binaries import ETCD_VERSION, KUBERNETES_VERSION
from reconciler_envtest.controlplane import ControlPlane

__all__ = ["ETCD_VERSION", "KUBERNETES_VERSION", "ControlPlane"]
