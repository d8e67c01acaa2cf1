"""The generated CRDs on a real kube-apiserver: every example is accepted, invalid manifests are
rejected with messages that name the field and the rule, and `kubectl explain` describes."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from reconciler_envtest import binaries
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.api import crd
from reconciler.runtime.client import Client, InvalidError
from tests.api_examples import EXAMPLES, hippo, load

DELETE = object()
"""A case's value that removes the field instead of setting it."""


async def kubectl(control_plane: ControlPlane, *args: str) -> tuple[int, str]:
    """Run the real kubectl against the session's control plane: exit code, stdout+stderr."""
    process = await asyncio.create_subprocess_exec(
        str(binaries.ensure() / "kubectl"),
        "--kubeconfig",
        str(control_plane.kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return await process.wait(), output.decode()


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
async def test_example_is_accepted(control_plane: ControlPlane, path: Path) -> None:
    code, output = await kubectl(
        control_plane,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        str(path),
        "-n",
        "default",
    )
    assert code == 0, output
    assert "serverside-applied (server dry run)" in output


def _changed(obj: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A copy of `obj` with the dotted `path` (list indexes as numbers) set or deleted."""
    changed = copy.deepcopy(obj)
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    node: Any = changed
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return changed


async def _dry_run(kube: Client, kind: crd.Kind, manifest: dict[str, Any]) -> None:
    """Create `manifest` in namespace default as a server-side dry run (all validation)."""
    path = kind.resource.path("default")
    await kube.request("POST", path, params={"dryRun": "All"}, body=manifest)


PVC_WITHOUT_STORAGE = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {}}}
PVC = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
VOLUME_REPO = {"name": "repo1", "volume": {"volumeClaimSpec": PVC_WITHOUT_STORAGE}}
VOLUME_DATA_SOURCE = {"stanza": "db", "repo": {"name": "repo1", "volume": {"volumeClaimSpec": PVC}}}


def case(name: str, path: str, value: object, *expected: str) -> Any:
    """One invalid manifest: hippo with `path` set to `value` (or deleted), and the texts
    the apiserver's message must contain (the field, and the rule it broke)."""
    return pytest.param(path, value, list(expected), id=name)


INVALID = [
    case("no-version", "spec.postgresVersion", DELETE, "spec.postgresVersion", "Required value"),
    case(
        "version-too-old",
        "spec.postgresVersion",
        10,
        "spec.postgresVersion",
        "greater than or equal to 11",
    ),
    case(
        "version-too-new",
        "spec.postgresVersion",
        19,
        "spec.postgresVersion",
        "less than or equal to 18",
    ),
    case("no-instances", "spec.instances", [], "spec.instances", "at least 1 items"),
    case("set-name", "spec.instances.0.name", "Set_1", "spec.instances[0].name", "should match"),
    case(
        "replicas-zero",
        "spec.instances.0.replicas",
        0,
        "spec.instances[0].replicas",
        "greater than or equal to 1",
    ),
    case(
        "no-access-modes",
        "spec.instances.0.dataVolumeClaimSpec.accessModes",
        DELETE,
        "spec.instances[0].dataVolumeClaimSpec",
        "missing accessModes",
    ),
    case(
        "no-storage",
        "spec.instances.0.dataVolumeClaimSpec.resources.requests",
        {},
        "spec.instances[0].dataVolumeClaimSpec",
        "missing storage request",
    ),
    case(
        "wal-no-storage",
        "spec.instances.0.walVolumeClaimSpec",
        PVC_WITHOUT_STORAGE,
        "spec.instances[0].walVolumeClaimSpec",
        "missing storage request",
    ),
    case(
        "repo-volume-no-storage",
        "spec.backups.pgbackrest.repos.0",
        VOLUME_REPO,
        "spec.backups.pgbackrest.repos[0].volume.volumeClaimSpec",
        "missing storage request",
    ),
    case(
        "repo-name",
        "spec.backups.pgbackrest.repos.0.name",
        "backups",
        "spec.backups.pgbackrest.repos[0].name",
        "^repo[1-4]",
    ),
    case(
        "manual-repo-name",
        "spec.backups.pgbackrest.manual",
        {"repoName": "repo9"},
        "spec.backups.pgbackrest.manual.repoName",
        "^repo[1-4]",
    ),
    case(
        "short-schedule",
        "spec.backups.pgbackrest.repos.0.schedules",
        {"full": "@day"},
        "spec.backups.pgbackrest.repos[0].schedules.full",
        "at least 6 chars",
    ),
    case(
        "listen-addresses",
        "spec.config.parameters",
        {"listen_addresses": "*"},
        "spec.config.parameters",
        "listen_addresses parameter is managed by the operator",
    ),
    case(
        "ssl-parameter",
        "spec.config.parameters",
        {"ssl_cert_file": "/tmp/x"},
        "spec.config.parameters",
        "ssl_* parameters are managed",
    ),
    case(
        "archive-parameter",
        "spec.config.parameters",
        {"archive_command": "cp %p /tmp"},
        "spec.config.parameters",
        "archive_command parameter is managed",
    ),
    case(
        "wal-level",
        "spec.config.parameters",
        {"wal_level": "minimal"},
        "spec.config.parameters",
        "only 'logical'",
    ),
    case(
        "ssl-groups-pg17",
        "spec.config.parameters",
        {"ssl_groups": "X25519"},
        "spec.config.parameters[ssl_groups]",
        "PostgreSQL 18 and later",
    ),
    case(
        "password-option",
        "spec.users",
        [{"name": "rhino", "options": "LOGIN password 'x'"}],
        "spec.users[0].options",
        "cannot assign password",
    ),
    case(
        "comment-option",
        "spec.users",
        [{"name": "rhino", "options": "LOGIN -- hi"}],
        "spec.users[0].options",
        "cannot contain comments",
    ),
    case(
        "semicolon-option",
        "spec.users",
        [{"name": "rhino", "options": "LOGIN; DROP"}],
        "spec.users[0].options",
        "should match '^[^;]*$'",
    ),
    case("user-name", "spec.users", [{"name": "Rhino"}], "spec.users[0].name", "should match"),
    case(
        "password-type",
        "spec.users",
        [{"name": "rhino", "password": {"type": "Hex"}}],
        "spec.users[0].password.type",
        "Unsupported value",
    ),
    case(
        "trust",
        "spec.authentication.rules",
        [{"connection": "host", "method": "trust"}],
        "spec.authentication.rules[0].method",
        "trust method is not allowed",
    ),
    case(
        "hba-and-parts",
        "spec.authentication.rules",
        [{"hba": "local all all peer", "method": "peer"}],
        "spec.authentication.rules[0]",
        "either `hba` alone",
    ),
    case(
        "hba-include",
        "spec.authentication.rules",
        [{"hba": " include_dir /tmp"}],
        "spec.authentication.rules[0].hba",
        "include directives are not allowed",
    ),
    case(
        "radius-options",
        "spec.authentication.rules",
        [{"connection": "host", "method": "radius", "options": {"radiusservers": "a"}}],
        "spec.authentication.rules[0].options",
        "radiussecrets",
    ),
    case(
        "pgbackrest-volume-source",
        "spec.dataSource",
        {"pgbackrest": VOLUME_DATA_SOURCE},
        "spec.dataSource.pgbackrest.repo",
        "Only S3, GCS or Azure repos",
    ),
    case(
        "hba-too-long",
        "spec.authentication.rules",
        [{"hba": "hostssl all all 10.0.0.0/8 " + "x" * 80}],
        "spec.authentication.rules[0].hba",
        "Too long",
    ),
    case(
        "hba-not-printable",
        "spec.authentication.rules",
        [{"hba": "hostssl all all all md5\nlocal all all trust"}],
        "spec.authentication.rules[0].hba",
        "should match '^[[:print:]]+$'",
    ),
    case(
        "ldap-without-base",
        "spec.authentication.rules",
        [{"connection": "host", "method": "ldap", "options": {"ldapserver": "x"}}],
        "spec.authentication.rules[0].options",
        "ldapbasedn, ldapprefix or ldapsuffix",
    ),
    case(
        "rule-database-too-long",
        "spec.authentication.rules",
        [{"connection": "host", "method": "md5", "databases": ["d" * 64]}],
        "spec.authentication.rules[0].databases[0]",
        "Too long",
    ),
    case(
        "user-database-too-long",
        "spec.users",
        [{"name": "rhino", "databases": ["d" * 64]}],
        "spec.users[0].databases[0]",
        "Too long",
    ),
    case(
        "pgadmin-ldap-password-without-name",
        "spec.userInterface",
        {"pgAdmin": {"dataVolumeClaimSpec": PVC, "config": {"ldapBindPassword": {"key": "pw"}}}},
        "spec.userInterface.pgAdmin.config.ldapBindPassword.name",
        "Required value",
    ),
    case(
        "pull-policy",
        "spec.imagePullPolicy",
        "Sometimes",
        "spec.imagePullPolicy",
        "Unsupported value",
    ),
    case("port", "spec.port", 80, "spec.port", "greater than or equal to 1024"),
    case(
        "lease",
        "spec.patroni",
        {"leaderLeaseDurationSeconds": 2},
        "spec.patroni.leaderLeaseDurationSeconds",
        "greater than or equal to 3",
    ),
    case(
        "service-type",
        "spec.service",
        {"type": "ExternalName"},
        "spec.service.type",
        "Unsupported value",
    ),
    case(
        "pgadmin-replicas",
        "spec.userInterface",
        {"pgAdmin": {"replicas": 2, "dataVolumeClaimSpec": PVC}},
        "spec.userInterface.pgAdmin.replicas",
        "less than or equal to 1",
    ),
    case(
        "supplemental-group",
        "spec.supplementalGroups",
        [0],
        "spec.supplementalGroups[0]",
        "greater than or equal to 1",
    ),
]


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(("path", "value", "expected"), INVALID)
async def test_invalid_postgrescluster_is_rejected(
    kube: Client, path: str, value: object, expected: list[str]
) -> None:
    with pytest.raises(InvalidError) as rejected:
        await _dry_run(kube, crd.POSTGRES_CLUSTERS, _changed(hippo(), path, value))
    for text in expected:
        assert text in rejected.value.message


ACCEPTED = [
    case("archive-timeout-and-library", "spec.config.parameters",
         {"archive_timeout": 60, "archive_library": "basic_archive"}),
    case("custom-tls-alone", "spec.customTLSSecret", {"name": "hippo-tls"}),
    case("no-spec", "spec", DELETE),
    case("hba-leading-space", "spec.authentication.rules", [{"hba": " hostssl all all all md5"}]),
]  # fmt: skip


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(("path", "value", "expected"), ACCEPTED)
async def test_what_pgo_accepts_is_accepted(
    kube: Client, path: str, value: object, expected: list[str]
) -> None:
    """Manifests PGO v5.8's CRD accepts: a drop-in must not refuse them."""
    await _dry_run(kube, crd.POSTGRES_CLUSTERS, _changed(hippo(), path, value))


@pytest.mark.usefixtures("crds")
async def test_pgupgrade_jobs_and_pgadmin_secret_references_as_pgo(kube: Client) -> None:
    """PGUpgrade `jobs` is pg_upgrade's process count; a PGAdmin's LDAP password names its
    Secret."""
    upgrade = load(Path(__file__).parents[2] / "manifests/examples/pgupgrade.yaml")
    upgrade["spec"]["jobs"] = 4
    await _dry_run(kube, crd.PG_UPGRADES, upgrade)
    upgrade["spec"]["jobs"] = -1
    with pytest.raises(InvalidError) as rejected:
        await _dry_run(kube, crd.PG_UPGRADES, upgrade)
    assert "spec.jobs" in rejected.value.message
    pgadmin = load(Path(__file__).parents[2] / "manifests/examples/pgadmin.yaml")
    pgadmin["spec"].setdefault("config", {})["ldapBindPassword"] = {"key": "password"}
    with pytest.raises(InvalidError) as rejected:
        await _dry_run(kube, crd.PG_ADMINS, pgadmin)
    assert "spec.config.ldapBindPassword.name" in rejected.value.message


@pytest.mark.usefixtures("crds")
async def test_invalid_pgupgrade_is_rejected(kube: Client) -> None:
    upgrade = load(Path(__file__).parents[2] / "manifests/examples/pgupgrade.yaml")
    upgrade["spec"]["toPostgresVersion"] = upgrade["spec"]["fromPostgresVersion"]
    with pytest.raises(InvalidError) as rejected:
        await _dry_run(kube, crd.PG_UPGRADES, upgrade)
    assert "spec.toPostgresVersion" in rejected.value.message
    assert "must be greater than fromPostgresVersion" in rejected.value.message


@pytest.mark.usefixtures("crds")
async def test_kubectl_explain_describes_the_repos(control_plane: ControlPlane) -> None:
    async def explained() -> str | None:
        code, output = await kubectl(
            control_plane, "explain", "postgrescluster.spec.backups.pgbackrest.repos"
        )
        return output if code == 0 and "The repositories" in output else None

    output = await wait_for(explained)
    assert "The repository name, `repo1` to `repo4`." in output
    assert "Store backups in S3." in output


@pytest.mark.usefixtures("crds")
async def test_stored_cluster_gets_defaults_status_and_columns(
    kube: Client, control_plane: ControlPlane, namespace: str
) -> None:
    manifest = hippo()
    manifest["metadata"]["namespace"] = namespace
    created = await kube.create(crd.POSTGRES_CLUSTERS.resource, manifest)
    assert created["spec"]["port"] == 5432
    assert created["spec"]["instances"][0]["replicas"] == 1
    assert created["spec"]["users"][0].get("password") is None

    status = {"status": {"instances": [{"name": "instance1", "replicas": 1, "readyReplicas": 1}]}}
    await kube.patch(
        crd.POSTGRES_CLUSTERS.resource, "hippo", status, namespace=namespace, subresource="status"
    )
    code, output = await kubectl(control_plane, "get", "postgrescluster", "-n", namespace)
    assert code == 0, output
    header, row = output.splitlines()
    assert header.split() == ["NAME", "READY", "POSTGRES", "AGE"]
    assert row.split()[:3] == ["hippo", "1", "17"]
