"""Fetching images by URL: real sockets, real servers, and only ever on loopback.

Every test installs ``loopback_only`` first: a connection attempt to any other address fails the
test instead of leaving this machine, so a refusal that came too late shows up as a failure.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.services import fetch
from app.services.fetch import FetchError, fetch_image
from tests.imagegen import encode, scene

LOOPBACK = ["127.0.0.1/32"]
PNG = encode(scene(64, 48), "PNG")
Respond = Callable[[BaseHTTPRequestHandler], None]


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: tuple) -> None:  # type: ignore[type-arg]
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"the test tried to connect to {address[0]}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class Server:
    """A loopback HTTP(S) server answering every GET with ``respond``; it records requests."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, **dict(self.headers)})
                with contextlib.suppress(OSError):  # the client may hang up on purpose
                    respond(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.block_on_close = False
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_port}"


@contextlib.contextmanager
def serving(respond: Respond, tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(respond, tls)
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def an_image(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, PNG, Content_Type="image/png", Content_Length=str(len(PNG)))


def refusal(url: str, **options: object) -> FetchError:
    options.setdefault("max_bytes", 1_000_000)
    with pytest.raises(FetchError) as caught:
        fetch_image(url, **options)  # type: ignore[arg-type]
    return caught.value


def test_an_image_is_fetched_with_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    with serving(an_image) as server:
        result = fetch_image(server.url + "/cat.png", max_bytes=100_000, allow_networks=LOOPBACK)
    assert (result.data, result.content_type) == (PNG, "image/png")
    assert result.final_url == server.url + "/cat.png"
    sent = server.requests[0]
    assert sent["Host"] == server.url.removeprefix("http://")
    assert sent["User-Agent"] == "ModtoolsImage/0.1"
    assert sent["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",  # shared address space (carrier-grade NAT)
        "http://224.0.0.1/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fec0::1]/",  # site-local
        "http://[2002:a00:1::]/",  # 6to4 wrapping 10.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 wrapping 169.254.169.254
        "http://[2001::1]/",  # Teredo
        "http://2130706433/",  # 127.0.0.1 written as one number
        "http://127.1/",
        "http://localhost/",
    ],
)
def test_addresses_inside_our_network_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    loopback_only(monkeypatch)
    error = refusal(url)
    assert (error.code, error.transient) == ("address_not_allowed", False)
    assert "not a public internet address" in error.message


def test_public_addresses_pass_the_address_check() -> None:
    for address in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:8.8.8.8"]:
        assert fetch.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://127.0.0.1/cat.png", "unsupported_scheme"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("gopher://127.0.0.1:70/", "unsupported_scheme"),
        ("http://user:secret@127.0.0.1/cat.png", "credentials_in_url"),
        ("http://user@127.0.0.1/cat.png", "credentials_in_url"),
        ("http://127.0.0.1\\@10.0.0.1/", "bad_url"),
        ("http:///cat.png", "bad_url"),
        ("http://127.0.0.1:99999/", "bad_url"),
    ],
)
def test_urls_we_do_not_fetch_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, code: str
) -> None:
    loopback_only(monkeypatch)
    error = refusal(url, allow_networks=LOOPBACK)
    assert (error.code, error.transient) == (code, False)


def test_a_redirect_into_our_network_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only(monkeypatch)
    with serving(lambda h: send(h, 302, Location="http://10.1.2.3/latest/meta-data/")) as server:
        error = refusal(server.url + "/cat.png", allow_networks=LOOPBACK)
    assert error.code == "address_not_allowed" and "10.1.2.3" in error.message
    assert len(server.requests) == 1


def test_redirects_are_followed_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)

    def respond(handler: BaseHTTPRequestHandler) -> None:
        hops = handler.path.count("/next")
        if hops < 3:
            send(handler, 301, Location=handler.path + "/next")
        else:
            an_image(handler)

    with serving(respond) as server:
        result = fetch_image(server.url + "/a", max_bytes=100_000, allow_networks=LOOPBACK)
        assert result.final_url == server.url + "/a/next/next/next"
        error = refusal(server.url + "/a", allow_networks=LOOPBACK, max_redirects=2)
    assert (error.code, error.transient) == ("too_many_redirects", False)


def test_a_name_is_resolved_once_and_its_checked_address_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only(monkeypatch)
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.9.9.9"])  # a rebinding DNS server changes its answer
    lookups = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if host != "images.rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with serving(an_image) as server:
        port = server.httpd.server_port
        result = fetch_image(
            f"http://images.rebind.test:{port}/cat.png", max_bytes=100_000, allow_networks=LOOPBACK
        )
    assert result.data == PNG
    assert lookups == ["images.rebind.test"]
    assert server.requests[0]["Host"] == f"images.rebind.test:{port}"


def trickle(handler: BaseHTTPRequestHandler, head: bytes) -> None:
    handler.wfile.write(head)
    for _ in range(100):  # one byte every 0.1 s: each read succeeds, the whole never ends
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.1)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nX-Slow: ",  # the headers themselves never finish
    ],
    ids=["slow body", "slow headers"],
)
def test_a_server_trickling_bytes_is_cut_off_at_the_total_timeout(
    monkeypatch: pytest.MonkeyPatch, head: bytes
) -> None:
    loopback_only(monkeypatch)
    with serving(lambda handler: trickle(handler, head)) as server:
        started = time.monotonic()
        error = refusal(server.url, allow_networks=LOOPBACK, total_timeout=1.5)
        elapsed = time.monotonic() - started
    assert (error.code, error.transient) == ("timeout", True)
    assert 1.4 <= elapsed < 2.5


def endless(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.end_headers()
    for _ in range(10_000):
        handler.wfile.write(b"\0" * 65536)


def test_a_body_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    declared = lambda h: send(h, 200, b"\0" * 5000, Content_Length="5000")  # noqa: E731
    for respond in (declared, endless):  # with and without Content-Length
        with serving(respond) as server:
            started = time.monotonic()
            error = refusal(server.url, allow_networks=LOOPBACK, max_bytes=4000)
            assert (error.code, error.transient) == ("too_large", False)
            assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (503, True), (429, True), (404, False), (403, False)]
)
def test_server_errors_may_be_retried_and_client_errors_not(
    monkeypatch: pytest.MonkeyPatch, status: int, transient: bool
) -> None:
    loopback_only(monkeypatch)
    with serving(lambda handler: send(handler, status, b"no")) as server:
        error = refusal(server.url, allow_networks=LOOPBACK)
    assert (error.code, error.transient) == ("http_error", transient)
    assert str(status) in error.message


def test_a_closed_port_is_a_transient_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    error = refusal(f"http://127.0.0.1:{port}/", allow_networks=LOOPBACK)
    assert (error.code, error.transient) == ("connection_failed", True)


def certificates(directory: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA file, and a server TLS context whose certificate (signed by that CA) is for ``name``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain = directory / "ca.pem", directory / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


def test_tls_checks_the_host_name_while_connecting_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loopback_only(monkeypatch)
    ca_file, context = certificates(tmp_path, "localhost")
    names_sent = []
    context.sni_callback = lambda sock, name, ctx: names_sent.append(name)  # type: ignore[assignment]
    with serving(an_image, tls=context) as server:
        url = f"https://localhost:{server.httpd.server_port}/cat.png"
        result = fetch_image(
            url, max_bytes=100_000, allow_networks=LOOPBACK, ca_bundle=str(ca_file)
        )
    assert result.data == PNG
    assert names_sent == ["localhost"]


def test_a_certificate_for_another_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loopback_only(monkeypatch)
    ca_file, context = certificates(tmp_path, "elsewhere.test")
    with serving(an_image, tls=context) as server:
        url = f"https://localhost:{server.httpd.server_port}/cat.png"
        error = refusal(url, allow_networks=LOOPBACK, ca_bundle=str(ca_file))
    assert (error.code, error.transient) == ("tls_failed", False)
