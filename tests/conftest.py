"""Fixtures shared by every test tier."""

pytest_plugins = ["reconciler_envtest.pytest_plugin"]
