"""`python -m reconciler` is the `reconciler` command."""

from reconciler.cli import main

main()
