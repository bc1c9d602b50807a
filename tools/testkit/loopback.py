"""Loopback HTTP(S) servers for test doubles: a free port, a daemon thread, tracked connections.

The fake Key Vault and the fake FHIR server share this: both must cut idle keep-alive
connections on stop, answer over TLS from a throwaway CA, and never join a handler that sits in
an injected delay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_tls_files() -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EHR Bridge test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TlsFiles(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


class LoopbackServer(ThreadingHTTPServer):
    """A threading server on 127.0.0.1 (free port) that tracks its connections, TLS optional."""

    daemon_threads = True
    # Handlers may sit in an injected delay or an idle keep-alive read: never join them.
    block_on_close = False

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None
    ) -> None:
        self.tls_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.accepted = 0
        self.serials: dict[Any, int] = {}
        super().__init__(("127.0.0.1", 0), handler)

    def finish_request(self: Self, request: Any, client_address: Any) -> None:
        conn = request
        if self.tls_context is not None:
            # The handshake runs here, in the connection's own thread, not in the accept loop.
            try:
                conn = self.tls_context.wrap_socket(request, server_side=True)
            except OSError:
                return  # e.g. the client refused our certificate: what a TLS test expects
        with self.connections_lock:
            self.accepted += 1
            self.serials[client_address] = self.accepted
            self.connections.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except OSError:
            pass
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
                self.serials.pop(client_address, None)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client hanging up mid-answer is what fault tests do."""

    def close_all_connections(self) -> None:
        """Cut every open connection, idle keep-alive ones included."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


class BackgroundServer:
    """Runs a ``LoopbackServer`` in a daemon thread; subclasses define ``start``."""

    _stop: threading.Event  # set on stop: injected delays end at once
    _server: Any = None
    _thread: threading.Thread | None = None
    _tmp: Path | None = None
    ca_path: str = ""

    def _tls_context(self, prefix: str) -> ssl.SSLContext:
        """A TLS 1.2+ server context from a fresh throwaway CA (its PEM at ``ca_path``)."""
        files = make_tls_files()
        self._tmp = Path(tempfile.mkdtemp(prefix=prefix))
        (self._tmp / "ca.pem").write_bytes(files.ca_pem)
        (self._tmp / "server.pem").write_bytes(files.cert_pem)
        key_path = self._tmp / "server.key"
        key_path.write_bytes(files.key_pem)
        key_path.chmod(0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._tmp / "server.pem", key_path)
        self.ca_path = str(self._tmp / "ca.pem")
        return context

    def _serve(self, server: LoopbackServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and remove the TLS files."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._server = self._thread = self._tmp = None

    def start(self) -> Self:
        """Bind and serve (defined by each double)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class HungServer:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers.

    A hung dependency, as opposed to a refused one: the client connects, sends its request and
    waits for its read timeout. ``accepted`` counts the connections, i.e. the calls that got
    this far (an SDK opens a new connection after a timed-out one).
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, name="hung-server", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._held.append(conn)  # held open, never read from, never answered

    def start(self) -> Self:
        """Start accepting in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every held connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
