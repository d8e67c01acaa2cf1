"""The control-plane binaries: Kubernetes' own, built from their Go modules, cached by version.

`k8s.io/kubernetes` pins its staging modules (`k8s.io/api`, `k8s.io/client-go`, ...) to v0.0.0
and maps them to local directories with `replace` directives, which Go ignores in a dependency.
A generated wrapper module therefore requires `k8s.io/kubernetes` at the pinned version and
replaces each staging module by itself at the matching v0 version. etcd's server module has
relative replaces of the same kind, so it gets a wrapper module too.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

# The one place where the Kubernetes version is chosen. etcd follows the version that
# Kubernetes pairs with it (the envtest release matrix).
KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BINARIES = ("etcd", *KUBERNETES_COMMANDS)

# Every staging module of k8s.io/kubernetes at the pinned minor version (its go.mod's replace
# block); a module missing here makes `go mod tidy` fail with an unknown v0.0.0 revision.
_STAGING_MODULES = (
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base",
    "component-helpers", "controller-manager", "cri-api", "cri-client", "cri-streaming",
    "csi-translation-lib", "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms",
    "kube-aggregator", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl",
    "kubelet", "metrics", "mount-utils", "pod-security-admission", "sample-apiserver",
    "sample-cli-plugin", "sample-controller", "streaming",
)  # fmt: skip


class BinariesUnavailableError(RuntimeError):
    """The binaries are neither given, nor cached, nor buildable here."""


def cache_root() -> Path:
    """Where built binaries are kept: `$RECONCILER_CACHE`, else `$XDG_CACHE_HOME/reconciler`."""
    if explicit := os.environ.get("RECONCILER_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reconciler"


def cache_dir() -> Path:
    """The directory holding the binaries of the pinned versions."""
    return cache_root() / f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"


def _complete(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def locate() -> Path | None:
    """The directory with all binaries, if one is given or cached; None when a build is needed.

    `RECONCILER_K8S_BIN` (or `KUBEBUILDER_ASSETS`) names a directory to use as it is; when it
    lacks a binary, that is an error, not a reason to build.
    """
    for variable in ("RECONCILER_K8S_BIN", "KUBEBUILDER_ASSETS"):
        if given := os.environ.get(variable):
            directory = Path(given)
            if not _complete(directory):
                missing = [n for n in BINARIES if not os.access(directory / n, os.X_OK)]
                raise BinariesUnavailableError(
                    f"{variable}={given} lacks the executables {', '.join(missing)}; "
                    f"put them there, or unset {variable} to build them into {cache_dir()}"
                )
            return directory
    return cache_dir() if _complete(cache_dir()) else None


def ensure(log: Path | None = None) -> Path:
    """The directory with all binaries, building them first if needed (minutes, once)."""
    if (found := locate()) is not None:
        return found
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        if _complete(target):  # another process built them while we waited
            return target
        _check_go()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
            _build(Path(work), log or target.parent / f"{target.name}.build.log")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(Path(work) / "bin", target)
    return target


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_go() -> None:
    go = shutil.which("go")
    hint = (
        "Either install Go (>= 1.26) with access to its module proxy, or set "
        "RECONCILER_K8S_BIN to a directory holding etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler and kubectl "
        f"(Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION})."
    )
    if go is None:
        raise BinariesUnavailableError(f"The Go toolchain is not on PATH. {hint}")
    probe = subprocess.run(
        [go, "list", "-m", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if probe.returncode != 0:
        raise BinariesUnavailableError(
            f"The Go module proxy did not serve k8s.io/kubernetes@v{KUBERNETES_VERSION}: "
            f"{probe.stderr.strip()[-300:]}. {hint}"
        )


def kubernetes_go_mod() -> str:
    """The wrapper module that builds Kubernetes' commands at the pinned version."""
    minor = KUBERNETES_VERSION.split(".", 1)[1]
    replaces = "\n".join(f"\tk8s.io/{m} => k8s.io/{m} v0.{minor}" for m in _STAGING_MODULES)
    return (
        "module reconciler.local/kubernetes\n\ngo 1.26.0\n\n"
        f"require k8s.io/kubernetes v{KUBERNETES_VERSION}\n\nreplace (\n{replaces}\n)\n"
    )


def etcd_go_mod() -> str:
    """The wrapper module that builds etcd's server at the pinned version."""
    return (
        "module reconciler.local/etcd\n\ngo 1.26.0\n\n"
        f"require go.etcd.io/etcd/server/v3 v{ETCD_VERSION}\n"
    )


def _tools_go(packages: list[str]) -> str:
    # Importing the commands' libraries makes `go mod tidy` record every dependency they need.
    imports = "\n".join(f'\t_ "{p}"' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def _build(work: Path, log_path: Path) -> None:
    (work / "bin").mkdir()
    minor = KUBERNETES_VERSION.split(".")[1]
    stamp = " ".join(
        f"-X {k}={v}"
        for k, v in (
            ("k8s.io/component-base/version.gitVersion", f"v{KUBERNETES_VERSION}"),
            ("k8s.io/component-base/version.gitMajor", "1"),
            ("k8s.io/component-base/version.gitMinor", minor),
            ("k8s.io/component-base/version.gitTreeState", "clean"),
            ("k8s.io/client-go/pkg/version.gitVersion", f"v{KUBERNETES_VERSION}"),
        )
    )
    modules = {
        "kubernetes": (
            kubernetes_go_mod(),
            [
                "k8s.io/kubernetes/cmd/kube-apiserver/app",
                "k8s.io/kubernetes/cmd/kube-controller-manager/app",
                "k8s.io/kubernetes/cmd/kube-scheduler/app",
                "k8s.io/kubectl/pkg/cmd",
            ],
            [f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS],
            f"-s -w {stamp}",
        ),
        "etcd": (
            etcd_go_mod(),
            ["go.etcd.io/etcd/server/v3/etcdmain"],
            ["go.etcd.io/etcd/server/v3"],
            "-s -w",
        ),
    }
    with log_path.open("w") as log:
        for name, (go_mod, imports, packages, ldflags) in modules.items():
            output = (work / "bin" / "etcd") if name == "etcd" else (work / "bin")
            _go_build(work / name, name, (go_mod, imports, packages, ldflags), output, log)


# A module to build: its go.mod, the packages its tools file imports (so that `go mod tidy`
# records their dependencies), the packages to build and the linker flags.
_GoModule = tuple[str, list[str], list[str], str]


def _go_build(module: Path, name: str, spec: _GoModule, output: Path, log: TextIO) -> None:
    """Build a generated wrapper module into `output`, logging each step."""
    go_mod, imports, packages, ldflags = spec
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    module.mkdir()
    (module / "go.mod").write_text(go_mod)
    (module / "tools.go").write_text(_tools_go(imports))
    steps = [
        ["go", "mod", "tidy"],
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(output), *packages],
    ]
    for step in steps:
        started = time.monotonic()
        log.write(f"$ (cd {module} && {' '.join(step)})\n")
        log.flush()
        done = subprocess.run(
            step, cwd=module, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
        log.write(f"# exit {done.returncode} after {time.monotonic() - started:.0f}s\n")
        log.flush()
        if done.returncode != 0:
            raise BinariesUnavailableError(
                f"Building {name} failed at `{' '.join(step[:2])}`; see {log.name}"
            )


# The S3-compatible object store of the backup tests: SeaweedFS's `weed`, from its Go module
# (a pseudo-version: SeaweedFS publishes no semantic versions to the module proxy).
SEAWEEDFS_VERSION = "v0.0.0-20261109003541-7506e5f91cd6"


def object_store_path() -> Path:
    """Where the object store's binary is kept."""
    return cache_root() / f"seaweedfs-{SEAWEEDFS_VERSION}" / "weed"


def ensure_object_store(log: Path | None = None) -> Path:
    """The object store's binary, built first if needed (minutes, once). `RECONCILER_WEED`
    names a binary to use instead."""
    if given := os.environ.get("RECONCILER_WEED"):
        return Path(given)
    target = object_store_path()
    if os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent.parent / f".{target.parent.name}.lock"):
        if os.access(target, os.X_OK):
            return target
        _check_go()
        # SeaweedFS's go.mod replaces one module; a replace applies only in the main module.
        go_mod = (
            "module reconciler.local/seaweedfs\n\ngo 1.26.6\n\n"
            f"require github.com/seaweedfs/seaweedfs {SEAWEEDFS_VERSION}\n\n"
            "replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0\n"
        )
        imports = ["github.com/getsentry/sentry-go", "github.com/seaweedfs/seaweedfs/weed/command"]
        with (
            tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work,
            (log or target.parent / "build.log").open("w") as log_file,
        ):
            built = Path(work) / "weed"
            spec = (go_mod, imports, ["github.com/seaweedfs/seaweedfs/weed"], "-s -w")
            _go_build(Path(work) / "module", "seaweedfs", spec, built, log_file)
            os.replace(built, target)
    return target
