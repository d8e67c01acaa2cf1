"""The Secrets holding the cluster's certificates, with PGO's names, labels and keys.

Each builder takes the certificate it should hold; deciding whether an existing certificate
may stay (`authority.leaf_is_current`) happens before, so an unchanged certificate renders an
unchanged Secret and nothing is written.
"""

from __future__ import annotations

import base64

from reconciler import naming
from reconciler.intent import Owner, metadata
from reconciler.pki import x509
from reconciler.runtime.client import JSON


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(meta: JSON, data: dict[str, bytes]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {key: _b64(value) for key, value in sorted(data.items())},
    }


def read(secret: JSON | None, certificate_key: str, private_key: str) -> x509.Certificate | None:
    """The certificate a Secret holds under the two keys, or None if absent or unusable."""
    data = (secret or {}).get("data") or {}
    if certificate_key not in data or private_key not in data:
        return None
    try:
        return x509.Certificate.from_pem(
            base64.b64decode(data[certificate_key]), base64.b64decode(data[private_key])
        )
    except (ValueError, TypeError):
        return None


def root_secret(namespace: str, root: x509.Certificate, owners: list[JSON]) -> JSON:
    """`pgo-root-cacert`: the namespace's root, owned (not controlled) by each cluster using it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": naming.ROOT_CA_SECRET,
            "namespace": namespace,
            "ownerReferences": owners,
        },
        "type": "Opaque",
        "data": {"root.crt": _b64(root.certificate_pem), "root.key": _b64(root.key_pem)},
    }


# X.509 limits a common name to 64 characters (RFC 5280); DNS names in the SANs have no such
# limit, and clients verify those, so a long FQDN gives way to a shorter form in the CN.
_MAX_COMMON_NAME = 64


def _common_name(names: list[str]) -> str:
    return next((n for n in names if len(n) <= _MAX_COMMON_NAME), names[-1][:_MAX_COMMON_NAME])


def cluster_names(owner: Owner) -> tuple[str, list[str]]:
    """Common name and DNS names of the server certificate: the primary and replica Services,
    and (beyond PGO) every pod under `<c>-pods`, the names replicas and `pg_rewind` connect to,
    so that replication verifies the host too (verify-full; PGO's is verify-ca)."""
    primary = naming.certificate_dns_names(
        naming.cluster_primary_service(owner.name), owner.namespace
    )
    replicas = naming.certificate_dns_names(
        naming.cluster_replica_service(owner.name), owner.namespace
    )
    pods = naming.certificate_dns_names(
        f"*.{naming.cluster_pod_service(owner.name)}", owner.namespace
    )
    return _common_name(primary), primary + replicas + pods


def cluster_secret(owner: Owner, root: x509.Certificate, leaf: x509.Certificate) -> JSON:
    """`<c>-cluster-cert`: PostgreSQL's server certificate."""
    labels = {**naming.cluster_labels(owner.name), naming.LABEL_CLUSTER_CERTIFICATE: "postgres-tls"}
    return _secret(
        metadata(owner, naming.cluster_certificate_secret(owner.name), labels),
        {"ca.crt": root.certificate_pem, "tls.crt": leaf.certificate_pem, "tls.key": leaf.key_pem},
    )


def replication_names() -> tuple[str, list[str]]:
    """Common name and DNS names of the replication user's client certificate."""
    return naming.REPLICATION_USER, [naming.REPLICATION_USER]


def replication_secret(owner: Owner, root: x509.Certificate, leaf: x509.Certificate) -> JSON:
    """`<c>-replication-cert`: the client certificate of the replication user."""
    labels = {
        **naming.cluster_labels(owner.name),
        naming.LABEL_CLUSTER_CERTIFICATE: "replication-client-tls",
    }
    return _secret(
        metadata(owner, naming.replication_certificate_secret(owner.name), labels),
        {"ca.crt": root.certificate_pem, "tls.crt": leaf.certificate_pem, "tls.key": leaf.key_pem},
    )


def instance_names(owner: Owner, instance: str) -> tuple[str, list[str]]:
    """Common name and DNS names of an instance: its pod's name under `<c>-pods`."""
    pod_host = f"{naming.instance_pod(instance)}.{naming.cluster_pod_service(owner.name)}"
    names = naming.certificate_dns_names(pod_host, owner.namespace)
    return _common_name(names), names


def instance_secret(
    owner: Owner,
    instance_set: str,
    instance: str,
    root: x509.Certificate,
    leaf: x509.Certificate,
    *,
    extra: JSON | None = None,
) -> JSON:
    """`<inst>-certs`: the instance's server certificate for Patroni's API and pgBackRest."""
    return _secret(
        metadata(
            owner,
            naming.instance_certificates(instance),
            naming.instance_labels(owner.name, instance_set, instance),
            extra=extra,
        ),
        {
            "dns.crt": leaf.certificate_pem,
            "dns.key": leaf.key_pem,
            "patroni.ca-roots": root.certificate_pem,
            # Patroni reads key and certificate from one file.
            "patroni.crt-combined": leaf.key_pem + leaf.certificate_pem,
            "pgbackrest-server.crt": leaf.certificate_pem,
            "pgbackrest-server.key": leaf.key_pem,
        },
    )


def pgbackrest_client_names(owner: Owner) -> tuple[str, list[str]]:
    """Common name and DNS names of pgBackRest's client certificate: one per cluster, which
    every pgBackRest TLS server of the cluster (and only of it) accepts."""
    name = f"pgbackrest@{owner.uid}"
    return name, [name]


def repo_host_names(owner: Owner) -> tuple[str, list[str]]:
    """Common name and DNS names of the repository host: its pod's name under `<c>-pods`."""
    pod_host = f"{naming.repo_host(owner.name)}-0.{naming.cluster_pod_service(owner.name)}"
    names = naming.certificate_dns_names(pod_host, owner.namespace)
    return _common_name(names), names


def pgbackrest_secret(
    owner: Owner,
    root: x509.Certificate,
    client: x509.Certificate,
    repo_host: x509.Certificate | None,
    *,
    extra: JSON | None = None,
) -> JSON:
    """`<c>-pgbackrest`: the CA, the client certificate, and the repository host's server
    certificate when there is a repository host."""
    labels = {**naming.pgbackrest_labels(owner.name), naming.LABEL_PGBACKREST_CONFIG: ""}
    data = {
        "pgbackrest.ca-roots": root.certificate_pem,
        "pgbackrest-client.crt": client.certificate_pem,
        "pgbackrest-client.key": client.key_pem,
    }
    if repo_host is not None:
        data["pgbackrest-repo-host.crt"] = repo_host.certificate_pem
        data["pgbackrest-repo-host.key"] = repo_host.key_pem
    return _secret(metadata(owner, naming.pgbackrest_secret(owner.name), labels, extra=extra), data)


def pgbouncer_names(owner: Owner) -> tuple[str, list[str]]:
    """Common name and DNS names of pgBouncer's frontend certificate: its Service."""
    names = naming.certificate_dns_names(naming.pgbouncer(owner.name), owner.namespace)
    return _common_name(names), names
