"""The `reconciler-envtest` command line: a local control plane for tests, benchmarks and the
demo. A development tool: the operator's image and its `reconciler` command know nothing of it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from reconciler_envtest import ETCD_VERSION, KUBERNETES_VERSION


def _run(args: argparse.Namespace) -> int:
    from reconciler_envtest import daemon
    from reconciler_envtest.binaries import ensure, ensure_object_store

    run_dir = Path(args.dir)
    match args.action:
        case "isolated":
            from reconciler_envtest import isolation

            if not args.command_args:
                print("usage: reconciler-envtest isolated -- COMMAND [ARG...]", file=sys.stderr)
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
            print(ensure_object_store())
    return 0


def _version() -> int:
    print(f"reconciler-envtest: Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}")
    return 0


ACTIONS = {
    "up": "start a control plane in the background and print its kubeconfig",
    "down": "stop it; no process is left behind",
    "status": "exit 0 when it runs, 3 when not",
    "build": "only build (or locate) the control-plane binaries and the object store",
    "serve": "run a control plane in the foreground",
    "isolated": "run COMMAND in network and mount namespaces of its own (the e2e tier)",
    "exec": "run COMMAND beside a control plane started with --process-node",
    "version": "print the pinned Kubernetes and etcd versions",
}


def _options(parser: argparse.ArgumentParser, default: str) -> None:
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
    """The argument parser of every action."""
    envtest = argparse.ArgumentParser(
        prog="reconciler-envtest",
        description="A local Kubernetes control plane (etcd, apiserver, controllers, a node).",
    )
    _options(envtest, argparse.SUPPRESS)  # also before the action, with the defaults
    envtest.set_defaults(dir=".envtest", process_node=False)
    actions = envtest.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_ in ACTIONS.items():
        sub = actions.add_parser(action, help=help_, description=help_)
        _options(sub, argparse.SUPPRESS)
        if action in ("isolated", "exec"):
            # After `--`, everything is the command, its options included.
            sub.add_argument("command_args", nargs="*", metavar="-- COMMAND [ARG...]")
    return envtest


def main(argv: list[str] | None = None) -> None:
    """Run the action named in `argv` (default: the process arguments)."""
    args = parser().parse_args(argv)
    try:
        code = _version() if args.action == "version" else _run(args)
    except (RuntimeError, TimeoutError, OSError) as error:
        print(f"reconciler-envtest {args.action}: {error}", file=sys.stderr)
        code = 1
    sys.exit(code)
