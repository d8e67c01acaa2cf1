"""Fixtures shared by every test tier."""

pytest_plugins = ["reconciler.envtest.pytest_plugin"]
