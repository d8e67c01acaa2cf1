"""The `reconciler` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler import __version__


def _crd(args: argparse.Namespace) -> int:
    from reconciler.api import crd

    if args.check:
        stale = crd.differences(Path(args.check))
        for name in stale:
            print(f"{Path(args.check) / name} differs from the generated CRD", file=sys.stderr)
        return 1 if stale else 0
    if args.write:
        for name in crd.write(Path(args.write)):
            print(f"wrote {Path(args.write) / name}")
        return 0
    print(crd.all_documents(), end="")
    return 0


def _rbac(args: argparse.Namespace) -> int:
    from reconciler.operator import cluster_role_yaml

    rendered = cluster_role_yaml()
    if args.check:
        if Path(args.check).read_text() != rendered:
            print(f"{args.check} differs from the rules the code declares", file=sys.stderr)
            return 1
        return 0
    if args.write:
        Path(args.write).write_text(rendered)
        print(f"wrote {args.write}")
        return 0
    print(rendered, end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import os

    from reconciler import config, logging, operator

    try:
        settings = config.from_environment(os.environ)
    except config.ConfigError as error:
        print(f"reconciler run: {error}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(settings, leader_elect=args.leader_elect)
    logging.configure(debug=settings.debug)
    return asyncio.run(
        operator.run(
            settings,
            kubeconfig=args.kubeconfig,
            health_address=args.health_probe_bind_address,
            metrics_address=args.metrics_bind_address,
        )
    )


def _version(_: argparse.Namespace) -> int:
    print(f"reconciler {__version__}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    root = argparse.ArgumentParser(
        prog="reconciler",
        description="A PostgreSQL operator for Kubernetes, drop-in compatible with PGO v5.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(func=_version)

    crd = commands.add_parser(
        "crd", help="print the CustomResourceDefinitions, generated from the API models"
    )
    target = crd.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="DIR", help="write the files of manifests/crd/ to DIR")
    target.add_argument(
        "--check", metavar="DIR", help="exit 1 when the files in DIR differ from the generated ones"
    )
    crd.set_defaults(func=_crd)

    rbac = commands.add_parser(
        "rbac", help="print the operator's ClusterRole, rendered from the rules the code declares"
    )
    target = rbac.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="FILE", help="write it to FILE")
    target.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from it")
    rbac.set_defaults(func=_rbac)

    run = commands.add_parser("run", help="run the operator (configured by PGO_* variables)")
    run.add_argument("--kubeconfig", help="default: in-cluster, then $KUBECONFIG or ~/.kube")
    run.add_argument("--health-probe-bind-address", default=":8081", metavar="[HOST]:PORT")
    run.add_argument("--metrics-bind-address", default=":8080", metavar="[HOST]:PORT")
    run.add_argument(
        "--leader-elect",
        type=lambda value: value.lower() in ("true", "1", "yes"),
        default=True,
        metavar="true|false",
        help="elect a leader on a Lease in $PGO_NAMESPACE (default: true)",
    )
    run.set_defaults(func=_run)
    return root


def main(argv: list[str] | None = None) -> None:
    """Run the command named in `argv` (default: the process arguments)."""
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except (RuntimeError, TimeoutError, OSError) as error:
        print(f"reconciler {args.command}: {error}", file=sys.stderr)
        code = 1
    sys.exit(code)
