"""TLS of the admin console: verified for the Service's name whatever address was dialled."""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from pathlib import Path

import pytest

from reconciler.pgbouncer.admin import console_tls
from reconciler.pki import authority, x509

SERVICE = "hippo-pgbouncer.ns.svc"


def _handshake(client: ssl.SSLContext, leaf: x509.Certificate) -> None:
    """A TLS handshake in memory between `client` (dialling an address) and a server
    presenting `leaf`."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert.write_bytes(leaf.certificate_pem)
        key.write_bytes(leaf.key_pem)
        server.load_cert_chain(cert, key)
    wires = [ssl.MemoryBIO() for _ in range(4)]
    dialler = client.wrap_bio(wires[0], wires[1], server_hostname="10.244.0.7")
    listener = server.wrap_bio(wires[2], wires[3], server_side=True)
    for _ in range(10):
        for end, outgoing, incoming in (
            (dialler, wires[1], wires[2]),
            (listener, wires[3], wires[0]),
        ):
            with contextlib.suppress(ssl.SSLWantReadError):  # waits for the other end
                end.do_handshake()
            incoming.write(outgoing.read())
        if dialler.version() and listener.version():
            return
    raise AssertionError("the handshake did not finish")


def test_console_is_verified_for_the_service_name() -> None:
    root = authority.new_root()
    tls = console_tls(root.certificate_pem.decode(), SERVICE)
    _handshake(tls, authority.issue_leaf(root, SERVICE, [SERVICE]))
    other = "hippo-primary.ns.svc"
    wrong_name = authority.issue_leaf(root, other, [other])
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _handshake(tls, wrong_name)
    stranger = authority.issue_leaf(authority.new_root(), SERVICE, [SERVICE])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tls, stranger)
