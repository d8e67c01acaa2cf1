"""pgBackRest's parts of pods, laid out as PGO lays them out: the TLS server and its reloader
beside PostgreSQL, the dedicated repository host's pod, and the backup Jobs' pod.

Every pgBackRest process finds its configuration in `/etc/pgbackrest/conf.d` (pgBackRest's
default include path), projected from `<c>-pgbackrest-config` and `<c>-pgbackrest`; the TLS
servers find their own certificate in `/etc/pgbackrest/server`, kept outside `conf.d` so that
the backup Job's comparison of configurations does not change with the primary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler import naming
from reconciler.containers import (
    NSS_WRAPPER_ENV,
    RESTRICTED_SECURITY_CONTEXT,
    mount,
    nss_wrapper_init,
    postgres_pod_security_context,
)
from reconciler.pgbackrest import config
from reconciler.runtime.client import JSON

CONFIG_VOLUME = "pgbackrest-config"
SERVER_VOLUME = "pgbackrest-server"
_KEY_MODE = 0o600


def _client_certificates(cluster: str, *, optional: bool) -> JSON:
    source: JSON = {
        "name": naming.pgbackrest_secret(cluster),
        "items": [
            {"key": "pgbackrest.ca-roots", "path": config.CA_FILE},
            {"key": "pgbackrest-client.crt", "path": config.CLIENT_CERT_FILE},
            {"key": "pgbackrest-client.key", "path": config.CLIENT_KEY_FILE, "mode": _KEY_MODE},
        ],
    }
    if optional:
        source["optional"] = True
    return {"secret": source}


def config_volume(cluster: str, spec: JSON, conf: str) -> JSON:
    """`pgbackrest-config`: the user's `configuration` projections, then the operator's file for
    the pod (`conf`: the instance's, the repository host's or the cloud backup Job's), then the
    client certificates (later sources win). Instances may start before the certificates exist;
    a cloud backup Job needs neither the configuration hash nor the server's file."""
    items = [{"key": conf, "path": conf}]
    if conf != config.CLOUD_CONF_KEY:
        items += [
            {"key": config.CONFIG_HASH_KEY, "path": config.CONFIG_HASH_KEY},
            {"key": config.SERVER_CONF_KEY, "path": config.SERVER_CONF_FILE},
        ]
    user = ((spec.get("backups") or {}).get("pgbackrest") or {}).get("configuration") or []
    return {
        "name": CONFIG_VOLUME,
        "projected": {
            "sources": [
                *user,
                {"configMap": {"name": naming.pgbackrest_config(cluster), "items": items}},
                _client_certificates(cluster, optional=conf == config.INSTANCE_CONF_KEY),
            ]
        },
    }


def server_volume(secret: str, certificate_key: str, key_key: str) -> JSON:
    """`pgbackrest-server`: the TLS server's own certificate."""
    return {
        "name": SERVER_VOLUME,
        "projected": {
            "sources": [
                {
                    "secret": {
                        "name": secret,
                        "items": [
                            {"key": certificate_key, "path": "server-tls.crt"},
                            {"key": key_key, "path": "server-tls.key", "mode": _KEY_MODE},
                        ],
                    }
                }
            ]
        },
    }


def _container(name: str, image: str, spec: JSON, **fields: object) -> JSON:
    pull = {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    return {
        "name": name,
        "image": image,
        **pull,
        **fields,
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
    }


def server_containers(
    image: str, spec: JSON, data_mounts: Sequence[JSON], *, server_resources: JSON | None
) -> list[JSON]:
    """The TLS server (`pgbackrest server`, which the repository host and instances reach
    each other through) and the reloader that signals it when its files change."""
    pgbackrest = (spec.get("backups") or {}).get("pgbackrest") or {}
    sidecars = pgbackrest.get("sidecars") or {}
    config_resources = (sidecars.get("pgbackrestConfig") or {}).get("resources") or {}
    return [
        _container(
            naming.CONTAINER_PGBACKREST,
            image,
            spec,
            command=["pgbackrest", "server"],
            env=NSS_WRAPPER_ENV,
            livenessProbe={"exec": {"command": ["pgbackrest", "server-ping"]}},
            resources=server_resources or {},
            volumeMounts=[
                mount(SERVER_VOLUME, config.SERVER_DIRECTORY, read_only=True),
                *data_mounts,
                mount(CONFIG_VOLUME, config.CONFIG_DIRECTORY, read_only=True),
                mount("tmp", "/tmp"),
            ],
        ),
        _container(
            naming.CONTAINER_PGBACKREST_CONFIG,
            image,
            spec,
            command=[
                "bash",
                "-ceu",
                "--",
                config.reload_script(),
                naming.CONTAINER_PGBACKREST_CONFIG,
                *config.RELOAD_ARGS,
            ],
            resources=config_resources,
            volumeMounts=[
                mount(SERVER_VOLUME, config.SERVER_DIRECTORY, read_only=True),
                mount(CONFIG_VOLUME, config.CONFIG_DIRECTORY, read_only=True),
                mount("tmp", "/tmp"),
            ],
        ),
    ]


def instance_additions(
    cluster: str, instance: str, spec: JSON, image: str, *, wal_volume: bool
) -> tuple[list[JSON], list[JSON]]:
    """The containers and volumes pgBackRest adds to an instance pod (the `database`
    container gains the `conf.d` mount: see `DATABASE_MOUNT`)."""
    data = [mount("postgres-data", "/pgdata")]
    if wal_volume:
        data.append(mount("postgres-wal", "/pgwal"))
    resources = ((spec["backups"]["pgbackrest"].get("sidecars") or {}).get("pgbackrest") or {}).get(
        "resources"
    )
    containers = server_containers(image, spec, data, server_resources=resources)
    volumes = [
        server_volume(
            naming.instance_certificates(instance), "pgbackrest-server.crt", "pgbackrest-server.key"
        ),
        config_volume(cluster, spec, config.INSTANCE_CONF_KEY),
    ]
    return containers, volumes


DATABASE_MOUNT = mount(CONFIG_VOLUME, config.CONFIG_DIRECTORY, read_only=True)


def volume_repos(spec: JSON) -> list[JSON]:
    """The repositories kept on volumes (claims mounted by the repository host)."""
    return [r for r in spec["backups"]["pgbackrest"].get("repos") or [] if r.get("volume")]


def repo_host_pod(cluster: str, spec: JSON, image: str, claims: Mapping[str, str]) -> JSON:
    """The repository host's pod: pgBackRest's TLS server with the volume repositories
    (on `<c>-<repo>`, or the claim `claims` names for the repository)."""
    pgbackrest = spec["backups"]["pgbackrest"]
    host = pgbackrest.get("repoHost") or {}
    resources = host.get("resources") or {}
    pull = {"imagePullPolicy": spec["imagePullPolicy"]} if spec.get("imagePullPolicy") else {}
    repos = volume_repos(spec)
    repo_mounts = [mount(r["name"], config.repo_path(r["name"])) for r in repos]
    first = repos[0]["name"]
    log_dir = config.repo_log_path(first)
    containers = server_containers(image, spec, repo_mounts, server_resources=resources)
    pod: JSON = {
        "restartPolicy": "Always",
        "shareProcessNamespace": True,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "serviceAccountName": naming.repo_host_rbac(cluster),
        "securityContext": postgres_pod_security_context(spec),
        "initContainers": [
            {
                "name": naming.CONTAINER_PGBACKREST_LOG_DIR,
                "image": image,
                **pull,
                "command": [
                    "bash",
                    "-c",
                    f"mkdir -p '{log_dir}' && {{ chmod 0775 '{log_dir}' || :; }}",
                ],
                "resources": resources,
                "securityContext": RESTRICTED_SECURITY_CONTEXT,
                "volumeMounts": [mount(first, config.repo_path(first)), mount("tmp", "/tmp")],
            },
            nss_wrapper_init(image, resources, pull),
        ],
        "containers": containers,
        "volumes": [
            server_volume(
                naming.pgbackrest_secret(cluster),
                "pgbackrest-repo-host.crt",
                "pgbackrest-repo-host.key",
            ),
            *(
                {
                    "name": r["name"],
                    "persistentVolumeClaim": {
                        "claimName": claims.get(r["name"]) or naming.repo_volume(cluster, r["name"])
                    },
                }
                for r in repos
            ),
            config_volume(cluster, spec, config.REPO_CONF_KEY),
            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        ],
    }
    return _scheduled(pod, host, spec)


# Beyond PGO: where a service mesh injects its proxy into every pod as an ordinary container
# (Istio and Linkerd before native sidecars), that container never exits and the Job never
# completes. After pgBackRest, the Job's container asks the proxies of these meshes to quit on
# their documented endpoints (Istio's pilot-agent, Linkerd's proxy); where nothing listens,
# the connection is refused at once. Bash's /dev/tcp: the images need no HTTP client. A mesh
# with native sidecars (init containers that restart Always) needs none of it: Kubernetes
# stops those when the Job's container ends.
MESH_QUIT_ENDPOINTS = ("15020/quitquitquit", "4191/shutdown")
_QUIT_REQUEST = (
    r"POST /%s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
_RELEASE_MESH = """request='{request}'
"$@"; code=$?
for endpoint in {endpoints}; do
  (printf "$request" "${{endpoint#*/}}" >&3 && timeout 5 cat <&3 >/dev/null) \\
    2>/dev/null 3<>"/dev/tcp/127.0.0.1/${{endpoint%%/*}}" || :
done
exit "$code"
""".format(request=_QUIT_REQUEST, endpoints=" ".join(MESH_QUIT_ENDPOINTS))


def then_release_mesh(argv: Sequence[str]) -> list[str]:
    """`argv`, then a request to quit to every mesh proxy of the pod; `argv`'s exit code."""
    return ["bash", "-c", _RELEASE_MESH, naming.CONTAINER_PGBACKREST, *argv]


def backup_job_pod(
    cluster: str,
    namespace: str,
    spec: JSON,
    image: str,
    *,
    repo: JSON,
    arguments: Sequence[str],
    log_claim: str | None = None,
) -> JSON:
    """The pod of a backup Job of `repo`, as PGO builds it. For a volume repository, Crunchy's
    pgBackRest image execs `pgbackrest backup <arguments>` in the repository host (after
    comparing its configuration with the host's); for a cloud repository, the Job runs
    `pgbackrest backup` itself and reaches the instances over TLS, logging to `log_claim`
    (PGO's `pgbackrest-cloud-log-volume` annotation) when given."""
    jobs = spec["backups"]["pgbackrest"].get("jobs") or {}
    fields: JSON = {"resources": jobs.get("resources") or {}}
    config_mount = mount(CONFIG_VOLUME, config.CONFIG_DIRECTORY, read_only=True)
    if repo.get("volume"):
        selector = ",".join(f"{k}={v}" for k, v in naming.repo_host_labels(cluster).items())
        container = _container(
            naming.CONTAINER_PGBACKREST,
            image,
            spec,
            command=then_release_mesh(["/opt/crunchy/bin/pgbackrest"]),
            env=[
                {"name": "COMMAND", "value": "backup"},
                {"name": "COMMAND_OPTS", "value": " ".join(arguments)},
                {"name": "COMPARE_HASH", "value": "true"},
                {"name": "CONTAINER", "value": naming.CONTAINER_PGBACKREST},
                {"name": "NAMESPACE", "value": namespace},
                {"name": "SELECTOR", "value": selector},
            ],
            **fields,
            volumeMounts=[config_mount],
        )
        security: JSON = {"fsGroupChangePolicy": "OnRootMismatch"}
        volumes = [config_volume(cluster, spec, config.REPO_CONF_KEY)]
    else:
        mounts = [config_mount, mount("tmp", "/tmp")]
        volumes = [
            config_volume(cluster, spec, config.CLOUD_CONF_KEY),
            {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
        ]
        if log_claim:
            mounts.append(mount(log_claim, config.cloud_log_path(log_claim)))
            volumes.append({"name": log_claim, "persistentVolumeClaim": {"claimName": log_claim}})
        container = _container(
            naming.CONTAINER_PGBACKREST,
            image,
            spec,
            command=then_release_mesh(["/bin/pgbackrest", "backup", *arguments]),
            **fields,
            volumeMounts=mounts,
        )
        # pgBackRest reads the client key, which only the volumes' group may read.
        security = postgres_pod_security_context(spec)
    pod: JSON = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "serviceAccountName": naming.pgbackrest_rbac(cluster),
        "securityContext": security,
        "containers": [container],
        "volumes": volumes,
    }
    return _scheduled(pod, jobs, spec)


def _scheduled(pod: JSON, source: JSON, spec: JSON) -> JSON:
    """`pod` with the scheduling fields of `source` (repoHost or jobs) and the spec's pull
    secrets, where set."""
    optional = {
        "affinity": source.get("affinity"),
        "tolerations": source.get("tolerations"),
        "priorityClassName": source.get("priorityClassName"),
        "imagePullSecrets": spec.get("imagePullSecrets"),
    }
    pod.update({k: v for k, v in optional.items() if v})
    return pod
