"""Size-capped volumes of the process node: the tmpfs size of a capacity."""

from __future__ import annotations

import pytest
from reconciler_envtest import disks


def test_size_is_the_capacity_in_whole_pages() -> None:
    assert disks.size_bytes("256Mi") == 256 * 2**20
    assert disks.size_bytes("1G") == 1_000_001_536  # rounded up to a 4 KiB page
    assert disks.size_bytes("1") == disks.PAGE


@pytest.mark.parametrize("capacity", ["0", "-1Gi", "lots"])
def test_a_capacity_that_is_no_size_is_refused(capacity: str) -> None:
    with pytest.raises(disks.DiskError, match="not a positive quantity"):
        disks.size_bytes(capacity)
