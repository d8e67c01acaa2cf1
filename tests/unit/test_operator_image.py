"""The operator ships without its test tooling: neither its import graph nor its wheel holds
the local control plane (`reconciler_envtest`) or pytest."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_operator_imports_no_test_tooling() -> None:
    """What `reconciler run` imports (every controller, the CLI) loads neither."""
    probe = (
        "import sys, reconciler.cli, reconciler.operator, reconciler.postgrescluster.controller; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert "'reconciler'" in loaded
    assert "'reconciler_envtest'" not in loaded
    assert "'pytest'" not in loaded
    assert "'_pytest'" not in loaded


def test_the_wheel_holds_only_the_operator(tmp_path: Path) -> None:
    """The wheel the image installs (`pip install .`) has no file of the test tooling."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("reconciler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reconciler/operator.py" in names
    assert not [n for n in names if "envtest" in n or n.startswith("tests/")]
