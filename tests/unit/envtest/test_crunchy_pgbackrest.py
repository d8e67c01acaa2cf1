"""The stand-in for Crunchy's `/opt/crunchy/bin/pgbackrest`: its settings, the configuration
hash (bash run for real on directories laid out as a kubelet's projected volumes), the script
run in the repository host (with a fake `pgbackrest`), and the whole run against a fake API."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from reconciler_envtest import crunchy_pgbackrest
from reconciler_envtest.crunchy_pgbackrest import (
    JobError,
    Settings,
    exec_argv,
    local_hash,
    run,
    settings,
)

from reconciler.runtime import podexec
from reconciler.runtime.client import Client, ObjectList
from reconciler.runtime.resources import PODS, Resource

SELECTOR = (
    "postgres-operator.crunchydata.com/cluster=hippo,"
    "postgres-operator.crunchydata.com/pgbackrest=,"
    "postgres-operator.crunchydata.com/pgbackrest-dedicated="
)
JOB_ENV = {
    "COMMAND": "backup",
    "COMMAND_OPTS": "--stanza=db --repo=1",
    "COMPARE_HASH": "true",
    "CONTAINER": "pgbackrest",
    "NAMESPACE": "postgres-operator",
    "SELECTOR": SELECTOR,
}
CONFIG = {
    "pgbackrest_repo.conf": b"[global]\nrepo1-path=/pgbackrest/repo1\n",
    "config-hash": b"65bb57b6b5",
    "~postgres-operator_server.conf": b"[global]\ntls-server-address=0.0.0.0\n",
    "~postgres-operator/tls-ca.crt": b"CA",
    "~postgres-operator/client-tls.key": b"KEY",
}


def project(directory: Path, files: dict[str, bytes], stamp: str) -> Path:
    """`files` laid out in `directory` as a kubelet's projected volume: a timestamped `..`
    directory, `..data` linking to it, and a link to `..data/<name>` per top-level entry."""
    data = directory / f"..{stamp}"
    for relative, content in files.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(content)
    (directory / "..data").symlink_to(data.name)
    for top in {relative.split("/", 1)[0] for relative in files}:
        (directory / top).symlink_to(f"..data/{top}")
    return directory


def expected(files: dict[str, bytes]) -> str:
    """The documented definition, in Python: the SHA-1 of `sha1sum`'s lines for the top-level
    files, by name in bytewise order."""
    lines = "".join(
        f"{hashlib.sha1(content).hexdigest()}  {name}\n"
        for name, content in sorted(files.items())
        if "/" not in name
    )
    return hashlib.sha1(lines.encode()).hexdigest()


def test_the_hash_of_a_projected_volume_is_its_top_level_files(tmp_path: Path) -> None:
    volume = project(tmp_path / "volume", CONFIG, "2026_01_02_03_04_05.123456789")
    assert local_hash(str(volume)) == expected(CONFIG)


def test_the_same_contents_hash_the_same_whatever_the_layout(tmp_path: Path) -> None:
    first = project(tmp_path / "first", CONFIG, "2026_01_02_03_04_05.1")
    second = project(tmp_path / "second", CONFIG, "2027_12_31_23_59_59.9_x")
    # The same files as regular files, with a leftover staging directory beside them.
    plain = tmp_path / "plain"
    for name, content in CONFIG.items():
        if "/" not in name:
            (plain / name).parent.mkdir(parents=True, exist_ok=True)
            (plain / name).write_bytes(content)
    (plain / "..2020_old").mkdir()
    (plain / "..2020_old" / "config-hash").write_bytes(b"stale")
    hashes = {local_hash(str(directory)) for directory in (first, second, plain)}
    assert hashes == {expected(CONFIG)}


def test_a_changed_or_added_file_changes_the_hash(tmp_path: Path) -> None:
    original = local_hash(str(project(tmp_path / "a", CONFIG, "2026_a")))
    changed = {**CONFIG, "config-hash": b"another"}
    assert local_hash(str(project(tmp_path / "b", changed, "2026_b"))) != original
    added = {**CONFIG, "extra.conf": b""}
    assert local_hash(str(project(tmp_path / "c", added, "2026_c"))) != original


def test_files_behind_a_linked_directory_do_not_count(tmp_path: Path) -> None:
    # PGO's client certificates, as with Crunchy's `**` (the Job cannot read the key).
    original = local_hash(str(project(tmp_path / "a", CONFIG, "2026_a")))
    renewed = {**CONFIG, "~postgres-operator/client-tls.key": b"ANOTHER KEY"}
    assert local_hash(str(project(tmp_path / "b", renewed, "2026_b"))) == original


def test_an_empty_directory_hashes_as_nothing(tmp_path: Path) -> None:
    assert local_hash(str(tmp_path)) == hashlib.sha1(b"").hexdigest()


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JobError, match=r"unable to calculate the hash .*/absent: .*absent"):
        local_hash(str(tmp_path / "absent"))


@pytest.fixture
def fake_pgbackrest(tmp_path: Path) -> dict[str, str]:
    """An environment whose `pgbackrest` prints its arguments, one a line, and exits with
    `$PGBACKREST_EXIT` (0 by default)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pgbackrest"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\nexit "${PGBACKREST_EXIT:-0}"\n')
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def in_pod(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What the command sent to the pod does, run here."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def test_matching_hashes_run_pgbackrest(tmp_path: Path, fake_pgbackrest: dict[str, str]) -> None:
    job = project(tmp_path / "job", CONFIG, "2026_job")
    repo_host = project(tmp_path / "repo-host", CONFIG, "2026_repo_host")
    argv = exec_argv(settings(JOB_ENV), local_hash(str(job)), str(repo_host))
    assert argv[:3] == ["bash", "-ceu", "--"]
    assert argv[4] == "-"
    done = in_pod(argv, fake_pgbackrest)
    assert (done.returncode, done.stdout, done.stderr) == (0, "backup\n--stanza=db\n--repo=1\n", "")


def test_a_mismatch_exits_1_without_running_pgbackrest(
    tmp_path: Path, fake_pgbackrest: dict[str, str]
) -> None:
    job = project(tmp_path / "job", CONFIG, "2026_job")
    repo_host = project(tmp_path / "repo-host", {**CONFIG, "config-hash": b"new"}, "2026_r")
    job_hash, pod_hash = local_hash(str(job)), local_hash(str(repo_host))
    done = in_pod(exec_argv(settings(JOB_ENV), job_hash, str(repo_host)), fake_pgbackrest)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"hash {job_hash} does not match local hash {pod_hash}\n"


def test_the_pod_fails_when_it_cannot_hash(tmp_path: Path, fake_pgbackrest: dict[str, str]) -> None:
    argv = exec_argv(settings(JOB_ENV), "0" * 40, str(tmp_path / "absent"))
    done = in_pod(argv, fake_pgbackrest)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "absent" in done.stderr


def test_options_are_shell_words_and_the_exit_code_is_pgbackrest_s(
    tmp_path: Path, fake_pgbackrest: dict[str, str]
) -> None:
    env = {**JOB_ENV, "COMMAND_OPTS": "--stanza=db --repo=1 --type=full --annotation='a=b c'"}
    conf_d = project(tmp_path / "conf.d", CONFIG, "2026_x")
    argv = exec_argv(settings(env), local_hash(str(conf_d)), str(conf_d))
    done = in_pod(argv, {**fake_pgbackrest, "PGBACKREST_EXIT": "3"})
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        "backup",
        "--stanza=db",
        "--repo=1",
        "--type=full",
        "--annotation=a=b c",
    ]


def test_without_compare_hash_pgbackrest_runs_directly(fake_pgbackrest: dict[str, str]) -> None:
    wanted = settings({**JOB_ENV, "COMPARE_HASH": "false"})
    assert not wanted.compare_hash
    done = in_pod(exec_argv(wanted, None), fake_pgbackrest)
    assert (done.returncode, done.stdout) == (0, "backup\n--stanza=db\n--repo=1\n")


def test_the_job_environment() -> None:
    assert settings(JOB_ENV) == Settings(
        namespace="postgres-operator",
        command="backup",
        command_opts="--stanza=db --repo=1",
        container="pgbackrest",
        selector=SELECTOR,
        pod_name="",
        compare_hash=True,
    )
    assert settings(JOB_ENV).pgbackrest == "pgbackrest backup --stanza=db --repo=1"


def test_defaults_and_podname() -> None:
    wanted = settings({"NAMESPACE": "ns", "COMMAND": "info", "PODNAME": "repo-host-0"})
    assert wanted == Settings(
        namespace="ns",
        command="info",
        command_opts="",
        container="database",
        selector="",
        pod_name="repo-host-0",
        compare_hash=False,
    )
    assert wanted.pgbackrest == "pgbackrest info"


@pytest.mark.parametrize(("value", "parsed"), [("1", True), ("TRUE", True), ("yes", False)])
def test_compare_hash_is_parsed_as_go_does(value: str, parsed: bool) -> None:
    assert settings({**JOB_ENV, "COMPARE_HASH": value}).compare_hash is parsed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"NAMESPACE": ""}, "required environment variable NAMESPACE is not set"),
        ({"COMMAND": "  "}, "required environment variable COMMAND is not set"),
        ({"COMMAND": "restore"}, "unsupported COMMAND 'restore': expected one of backup, info"),
        ({"SELECTOR": ""}, "required environment variable SELECTOR is not set, nor PODNAME"),
    ],
)
def test_environment_errors(change: dict[str, str], message: str) -> None:
    env = {name: value for name, value in {**JOB_ENV, **change}.items() if value}
    with pytest.raises(JobError, match=message):
        settings(env)


async def test_main_reports_environment_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert await crunchy_pgbackrest.main({"COMMAND": "backup"}) == 1
    assert capsys.readouterr().err == (
        "crunchy-pgbackrest: required environment variable NAMESPACE is not set\n"
    )


class FakeClient:
    """Lists the pods given; records the lists."""

    def __init__(self, *names: str) -> None:
        self.pods = [{"metadata": {"name": name}} for name in names]
        self.lists: list[tuple[Resource, str | None, str | None]] = []

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> ObjectList:
        self.lists.append((resource, namespace, label_selector))
        return ObjectList(items=cast(Any, self.pods), resource_version="1")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ((), "found 0 pods in namespace 'postgres-operator' with selector '.*', but expected"),
        (("b", "a"), "found 2 pods .*, but expected exactly one: a, b"),
    ],
)
async def test_the_selector_must_match_one_pod(names: tuple[str, ...], message: str) -> None:
    client = FakeClient(*names)
    with pytest.raises(JobError, match=message):
        await run(cast(Client, client), settings(JOB_ENV))
    assert client.lists == [(PODS, "postgres-operator", SELECTOR)]


async def test_the_command_runs_in_the_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str, list[str]]] = []

    async def fake_run(
        client: Client, namespace: str, pod: str, container: str, argv: list[str], **_: Any
    ) -> podexec.Completed:
        calls.append((namespace, pod, container, argv))
        return podexec.Completed(2, b"out\n", b"err\n")

    monkeypatch.setattr(podexec, "run", fake_run)
    project(tmp_path / "conf.d", CONFIG, "2026_x")
    stdout, stderr = io.BytesIO(), io.BytesIO()
    code = await run(
        cast(Client, FakeClient("hippo-repo-host-0")),
        settings(JOB_ENV),
        conf_dir=str(tmp_path / "conf.d"),
        stdout=stdout,
        stderr=stderr,
    )
    assert code == 2
    assert calls == [
        (
            "postgres-operator",
            "hippo-repo-host-0",
            "pgbackrest",
            exec_argv(settings(JOB_ENV), expected(CONFIG), str(tmp_path / "conf.d")),
        )
    ]
    assert stdout.getvalue() == b"out\n"
    assert stderr.getvalue().endswith(b"err\n")
    assert b"running [pgbackrest backup --stanza=db --repo=1] in pod" in stderr.getvalue()


async def test_a_refused_exec_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*_: Any, **__: Any) -> podexec.Completed:
        raise podexec.ExecError('container "pgbackrest" is not running')

    monkeypatch.setattr(podexec, "run", refuse)
    wanted = settings({**JOB_ENV, "COMPARE_HASH": "false"})
    with pytest.raises(JobError, match=r"unable to exec in pod postgres-operator/a, .* running"):
        await run(cast(Client, FakeClient("a")), wanted, stderr=io.BytesIO())
