"""`python -m reconciler_envtest` is the `reconciler-envtest` command."""

from reconciler_envtest.cli import main

main()
