"""What the containers of every pod the operator builds share, as PGO writes it: the
restricted security context, nss_wrapper's environment (the images' user gets a name whatever
UID runs it), and volume mounts."""

from __future__ import annotations

from reconciler.runtime.client import JSON

RESTRICTED_SECURITY_CONTEXT: JSON = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}

NSS_WRAPPER_ENV: list[JSON] = [
    {"name": "LD_PRELOAD", "value": "/usr/lib64/libnss_wrapper.so"},
    {"name": "NSS_WRAPPER_PASSWD", "value": "/tmp/nss_wrapper/postgres/passwd"},
    {"name": "NSS_WRAPPER_GROUP", "value": "/tmp/nss_wrapper/postgres/group"},
]


# Writes passwd and group files naming the random UID some platforms run containers as, so that
# PostgreSQL and ssh-like tools can resolve the current user (used through LD_PRELOAD).
NSS_WRAPPER = r"""
directory=/tmp/nss_wrapper/postgres
install --directory --mode=0700 "${directory}"
if ! getent passwd "$(id -u)" > /dev/null; then
  { cat /etc/passwd; printf 'postgres:x:%s:%s:postgres:/tmp:/bin/bash\n' "$(id -u)" "$(id -g)"; } \
    > "${directory}/passwd"
else
  cat /etc/passwd > "${directory}/passwd"
fi
# The group line as PGO writes it: named after the user, numbered as the user, the user in it.
if ! grep -q "^postgres:x:$(id -u):" /etc/group; then
  { grep -v '^postgres:x:' /etc/group; printf 'postgres:x:%s:postgres\n' "$(id -u)"; } \
    > "${directory}/group"
else
  cat /etc/group > "${directory}/group"
fi
"""


# The user and group of Crunchy's images; the group owns the volumes.
POSTGRES_ID = 26


def postgres_pod_security_context(spec: JSON) -> JSON:
    """The pod security context of pods that write PostgreSQL's or pgBackRest's files, as PGO
    sets it: its group owns the volumes (except on OpenShift, which assigns one), and the
    spec's supplemental groups other than root."""
    security: JSON = {"fsGroupChangePolicy": "OnRootMismatch"}
    if not spec.get("openshift"):
        security["fsGroup"] = POSTGRES_ID
    if groups := [g for g in spec.get("supplementalGroups") or [] if g > 0]:
        security["supplementalGroups"] = groups
    return security


def nss_wrapper_init(image: str, resources: JSON, pull_policy: JSON) -> JSON:
    """The init container that writes nss_wrapper's files into the pod's `/tmp`."""
    return {
        "name": "nss-wrapper-init",
        "image": image,
        **pull_policy,
        "command": ["bash", "-ceu", "--", NSS_WRAPPER, "nss-wrapper-init"],
        "resources": resources,
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
        "volumeMounts": [mount("tmp", "/tmp")],
    }


def mount(name: str, path: str, *, read_only: bool = False) -> JSON:
    """A volume mount."""
    result: JSON = {"name": name, "mountPath": path}
    if read_only:
        result["readOnly"] = True
    return result


def preferred_spread(selector: JSON) -> list[JSON]:
    """PGO's default topology spread of a pod's kind (`selector`): over hosts and zones, as a
    preference only, never a reason not to schedule."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
