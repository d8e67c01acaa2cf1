"""A PostgreSQL operator for Kubernetes, drop-in compatible with Crunchy Data PGO v5."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
