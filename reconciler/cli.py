"""The `reconciler` command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from reconciler import __version__


def _envtest(args: argparse.Namespace) -> int:
    from reconciler.envtest import daemon
    from reconciler.envtest.binaries import ensure

    run_dir = Path(args.dir)
    match args.action:
        case "isolated":
            from reconciler.envtest import isolation

            if not args.command_args:
                print("usage: reconciler envtest isolated -- COMMAND [ARG...]", file=sys.stderr)
                return 2
            return isolation.run_isolated(args.command_args)
        case "up":
            kubeconfig = daemon.up(run_dir, process_node=args.process_node)
            print(kubeconfig)
        case "serve":
            daemon.serve(run_dir, process_node=args.process_node)
        case "exec":
            return subprocess.call(daemon.enter(run_dir, args.command_args))
        case "down":
            stopped = daemon.down(run_dir)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        case "status":
            if daemon.running(run_dir.resolve()):
                print(f"running; kubeconfig {run_dir.resolve() / 'kubeconfig'}")
            else:
                print("not running")
                return 3
        case "build":
            print(ensure())
    return 0


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
    from reconciler.envtest import ETCD_VERSION, KUBERNETES_VERSION

    print(
        f"reconciler {__version__} (test control plane: Kubernetes {KUBERNETES_VERSION}, "
        f"etcd {ETCD_VERSION})"
    )
    return 0


_ENVTEST_ACTIONS = {
    "up": "start a control plane in the background and print its kubeconfig",
    "down": "stop it; no process is left behind",
    "status": "exit 0 when it runs, 3 when not",
    "build": "only build (or locate) the control-plane binaries",
    "serve": "run a control plane in the foreground",
    "isolated": "run COMMAND in network and mount namespaces of its own (the e2e tier)",
    "exec": "run COMMAND beside a control plane started with --process-node",
}


def _envtest_options(parser: argparse.ArgumentParser, default: str) -> None:
    # Accepted before and after the action, as users type them; `default` SUPPRESS keeps a
    # value given before the action from being reset by the action's parser.
    parser.add_argument("--dir", default=default, help="run directory (default: .envtest)")
    parser.add_argument(
        "--process-node",
        action="store_true",
        default=default,
        help="up/serve: pods run as processes, in namespaces of the run's own (as root)",
    )


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    root = argparse.ArgumentParser(
        prog="reconciler",
        description="A PostgreSQL operator for Kubernetes, drop-in compatible with PGO v5.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(func=_version)

    envtest = commands.add_parser(
        "envtest", help="a local Kubernetes control plane (etcd, apiserver, controllers, a node)"
    )
    _envtest_options(envtest, argparse.SUPPRESS)  # also before the action, with the defaults
    envtest.set_defaults(dir=".envtest", process_node=False, func=_envtest)
    actions = envtest.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_ in _ENVTEST_ACTIONS.items():
        sub = actions.add_parser(action, help=help_, description=help_)
        _envtest_options(sub, argparse.SUPPRESS)
        if action in ("isolated", "exec"):
            # After `--`, everything is the command, its options included.
            sub.add_argument("command_args", nargs="*", metavar="-- COMMAND [ARG...]")

    crd = commands.add_parser(
        "crd", help="print the CustomResourceDefinitions, generated from the API models"
    )
    target = crd.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="DIR", help="write the files of manifests/crd/ to DIR")
    target.add_argument(
        "--check", metavar="DIR", help="exit 1 when the files in DIR differ from the generated ones"
    )
    crd.set_defaults(func=_crd)

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
