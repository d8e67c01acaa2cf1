"""The process node's kubelet decisions and protocols, without processes: restart policies,
pod phases, image profiles, exec's options and statuses."""

from __future__ import annotations

import pytest
from reconciler_envtest import images, remotecommand
from reconciler_envtest.kubelet import pod_phase, restarts

from reconciler.runtime import podexec


@pytest.mark.parametrize(
    ("policy", "code", "init", "expected"),
    [
        ("Always", 0, False, True),
        ("Always", 1, False, True),
        ("OnFailure", 0, False, False),
        ("OnFailure", 2, False, True),
        ("Never", 0, False, False),
        ("Never", 1, False, False),
        # Init containers rerun only after a failure, and never under Never.
        ("Always", 0, True, False),
        ("Always", 1, True, True),
        ("OnFailure", 1, True, True),
        ("Never", 1, True, False),
    ],
)
def test_restarts_follow_the_pod_s_restart_policy(
    policy: str, code: int, init: bool, expected: bool
) -> None:
    assert restarts(policy, code, init=init) is expected


def test_pod_phase_as_a_kubelet_reports_it() -> None:
    def phase(started: list[bool], codes: list[int | None], **flags: bool) -> str:
        return pod_phase(
            init_failed=flags.get("init_failed", False),
            initialized=flags.get("initialized", True),
            started=started,
            exit_codes=codes,
        )

    assert phase([False], [None], initialized=False) == "Pending"
    assert phase([False], [None], init_failed=True, initialized=False) == "Failed"
    assert phase([True, False], [None, None]) == "Pending"  # an image not there yet
    assert phase([True], [None]) == "Running"  # running, or crash-looping
    assert phase([True, True], [0, None]) == "Running"
    assert phase([True, True], [0, 0]) == "Succeeded"
    assert phase([True, True], [0, 3]) == "Failed"


@pytest.mark.parametrize(
    "image",
    [
        "envtest.reconciler.dev/postgres:15",
        "postgres",
        "postgres:latest",
        "docker.io/library/postgres:15.8-bookworm",
        "registry.developers.crunchydata.com/crunchydata/crunchy-postgres:ubi9-15.13-2520",
        "localhost:5000/team/postgres:15@sha256:0123",
    ],
)
def test_postgres_images_from_any_registry_run_the_machine_s_postgres(
    image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's PostgreSQL majors, whatever this one has installed.
    monkeypatch.setattr(images, "installed_majors", lambda: [15])
    assert images.profile(image).env["PATH"].startswith("/usr/lib/postgresql/15/bin:")


def test_the_upgrade_image_sees_every_major_at_crunchy_s_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "installed_majors", lambda: [15, 17])
    upgrade = images.profile("registry.developers.crunchydata.com/crunchydata/crunchy-upgrade:1")
    assert upgrade.links["/usr/pgsql-15"] == "/usr/lib/postgresql/15"
    assert upgrade.links["/usr/pgsql-17"] == "/usr/lib/postgresql/17"
    assert images.related_images()["RELATED_IMAGE_POSTGRES_17"].endswith("/postgres:17")
    assert "RELATED_IMAGE_PGUPGRADE" in images.related_images()


def test_exporter_images_run_debian_s_postgres_exporter() -> None:
    """PGO's exporter image runs `postgres_exporter`: Debian's binary under that name."""
    profile = images.profile(
        "registry.developers.crunchydata.com/crunchydata/crunchy-postgres-exporter:ubi9-0.17.1-2520"
    )
    assert profile.links["/usr/local/bin/postgres_exporter"] == (
        "/usr/bin/prometheus-postgres-exporter"
    )
    assert profile.user == "prometheus"


def test_image_names_and_tags() -> None:
    assert images.split("localhost:5000/a/postgres") == ("postgres", "")
    assert images.split("a/b:t@sha256:00") == ("b", "t")
    assert images.tag_major("ubi9-16.9-2520") == 16
    assert images.tag_major("17") == 17
    assert images.tag_major("latest") is None


def test_unknown_images_and_majors_say_what_the_node_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "installed_majors", lambda: [15])
    known = (
        "crunchy-pgbouncer, crunchy-postgres, crunchy-postgres-exporter, crunchy-upgrade, "
        "pgbackrest"
    )
    with pytest.raises(images.UnknownImageError, match=known):
        images.profile("busybox:1.36")
    with pytest.raises(images.UnknownImageError, match="is PostgreSQL 99; this node has"):
        images.profile("postgres:99")


def test_exec_options_ignore_stderr_on_a_terminal() -> None:
    plain = remotecommand.Options.from_query({"input": "1", "output": "1", "error": "1"})
    assert plain == remotecommand.Options(stdin=True, stdout=True, stderr=True, tty=False)
    tty = remotecommand.Options.from_query({"output": "1", "error": "1", "tty": "1"})
    assert tty == remotecommand.Options(stdin=False, stdout=True, stderr=False, tty=True)


def test_exit_status_round_trips_through_the_error_stream() -> None:
    assert podexec.exit_code(remotecommand.exit_status(0)) == 0
    assert podexec.exit_code(remotecommand.exit_status(42)) == 42
    with pytest.raises(podexec.ExecError, match="no such container"):
        podexec.exit_code(remotecommand.failure("no such container"))
