"""Fetching an image by URL without letting the URL reach into our own network (SSRF).

The rules, checked again at every redirect, before any connection is made:

- http and https only, and no ``user:password@`` in the URL;
- the host name is resolved once, and every address it resolves to must be public: not private,
  loopback, link-local, multicast, reserved, unspecified, shared (100.64/10) or site-local, and
  not an IPv6 address wrapping such an IPv4 address (mapped, compatible, 6to4, NAT64) or a Teredo
  address. ``allow_networks`` (CIDR strings) lets an operator open specific ranges;
- the connection goes to exactly the address that was checked, so a DNS answer that changes
  between check and use (DNS rebinding) cannot swap in an internal address; the Host header, TLS
  SNI and certificate check still use the name;
- one deadline covers connecting, headers and body: when it passes the sockets are shut, so a
  server that trickles a byte a second cannot hold a worker for longer than ``total_timeout``;
- the body is refused as soon as it passes ``max_bytes`` (at once if Content-Length says so).

A FetchError says whether retrying may help (``transient``): timeouts, connection failures, 429
and 5xx may pass; refused addresses, bad URLs, 4xx and oversized bodies will not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import idna
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError

if not hasattr(HTTPAdapter, "build_connection_pool_key_attributes"):  # requests < 2.32.2
    raise ImportError("the URL fetcher pins addresses through a hook that needs requests 2.32.2+")

REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class FetchResult:
    """A fetched body, the server's Content-Type (a hint only) and the URL after redirects."""

    data: bytes
    content_type: str | None
    final_url: str


class FetchError(Exception):
    """A fetch that failed; ``transient`` says whether a later retry may succeed."""

    def __init__(self, code: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA), no brackets
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def fetch_image(
    url: str,
    *,
    max_bytes: int,
    connect_timeout: float = 5,
    total_timeout: float = 20,
    max_redirects: int = 5,
    allow_networks: Sequence[str] = (),
    user_agent: str = "ModtoolsImage/0.1",
    ca_bundle: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> FetchResult:
    """GET ``url`` under the rules above and return its body; raise FetchError otherwise.

    ``ca_bundle`` is a file of trusted CA certificates for servers behind a private CA.
    ``headers`` (a platform's credentials) go only to the first URL's scheme, host and port:
    they are dropped at a redirect to anywhere else.
    """
    allowed = [ipaddress.ip_network(network, strict=False) for network in allow_networks]
    origin = _origin(url)
    deadline = _Deadline(total_timeout)
    try:
        for _ in range(max_redirects + 1):
            if deadline.expired:
                raise _failure(None, deadline)
            target = _parse(url)
            addresses = _resolve(target, allowed)  # before any connection: refusals never connect
            extra = headers if headers and _origin(url) == origin else None
            request = _prepare(target, user_agent, extra)
            with _exchange(
                request, target, addresses, deadline, connect_timeout, ca_bundle
            ) as answer:
                if answer.status_code in REDIRECTS:
                    location = answer.headers.get("Location")
                    if not location:
                        raise FetchError(
                            "bad_redirect", "The server redirected nowhere.", transient=False
                        )
                    url = urljoin(url, location)
                    continue
                _check_status(answer)
                data = _read_body(answer, max_bytes, deadline)
                return FetchResult(data, answer.headers.get("Content-Type"), url)
        raise FetchError(
            "too_many_redirects",
            f"The URL redirected more than {max_redirects} times. Send the image's direct URL.",
            transient=False,
        )
    finally:
        deadline.cancel()


def is_public(address: Address) -> bool:
    """Whether ``address`` is on the public internet, judging IPv6 wrappers by what they wrap."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in NAT64 or address in IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _parse(url: str) -> _Target:
    bad_url = FetchError("bad_url", f"{url!r} is not a usable URL.", transient=False)
    if any(c.isspace() or c == "\\" or ord(c) < 32 for c in url):
        raise bad_url  # parsers disagree about these; we connect only to what we understood
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise FetchError(
            "unsupported_scheme", "Only http:// and https:// URLs can be fetched.", transient=False
        )
    if "@" in parts.netloc:
        raise FetchError(
            "credentials_in_url",
            "URLs with a user name or password in them are refused. Send a public URL.",
            transient=False,
        )
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
        host = parts.hostname or ""
        host = host if host.isascii() else idna.encode(host, uts46=True).decode("ascii")
    except (ValueError, idna.IDNAError):
        raise bad_url from None
    if not host:
        raise bad_url
    return _Target(url, scheme, host, port)


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    try:
        return parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return parts.scheme.lower(), parts.hostname, None


def _prepare(
    target: _Target, user_agent: str, extra: Mapping[str, str] | None = None
) -> requests.PreparedRequest:
    headers = {
        "Host": target.host_header,
        "User-Agent": user_agent,
        "Accept": "image/*",
        **{k: v for k, v in (extra or {}).items() if k.lower() not in ("host", "accept-encoding")},
        "Accept-Encoding": "identity",  # a compressed body could inflate past max_bytes
    }
    try:
        return requests.Request("GET", target.url, headers=headers).prepare()
    except requests.RequestException as exc:
        raise FetchError(
            "bad_url", f"{target.url!r} is not a usable URL.", transient=False
        ) from exc


def _resolve(target: _Target, allowed: list[Any]) -> list[Address]:
    try:
        return _permitted(target, [ipaddress.ip_address(target.host)], allowed)
    except ValueError:
        pass  # a name, not an address literal
    try:
        answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(
            "dns_failed",
            f"The host name {target.host} could not be resolved.",
            transient=getattr(exc, "errno", None) == socket.EAI_AGAIN,
        ) from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(answer[4][0]) for answer in answers))
    if not addresses:
        raise FetchError(
            "dns_failed", f"The host name {target.host} has no address.", transient=False
        )
    return _permitted(target, addresses, allowed)


def _permitted(target: _Target, addresses: list[Address], allowed: list[Any]) -> list[Address]:
    for address in addresses:
        wrapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        candidates = [address] if wrapped is None else [address, wrapped]
        if not (is_public(address) or any(a in n for a in candidates for n in allowed)):
            raise FetchError(
                "address_not_allowed",
                f"{target.host} leads to {address}, which is not a public internet address. "
                "Images can only be fetched from public servers.",
                transient=False,
            )
    return addresses


@contextlib.contextmanager
def _exchange(
    request: requests.PreparedRequest,
    target: _Target,
    addresses: list[Address],
    deadline: _Deadline,
    connect_timeout: float,
    ca_bundle: str | None,
) -> Iterator[requests.Response]:
    """Send ``request`` to the first of ``addresses`` that takes a connection."""
    for attempt, address in enumerate(addresses, 1):
        adapter = _PinnedAdapter(str(address), target.host, deadline)
        try:
            remaining = deadline.remaining()
            try:
                response = adapter.send(
                    request,
                    stream=True,
                    timeout=(min(connect_timeout, remaining), remaining),
                    verify=ca_bundle or True,
                )
            except requests.RequestException as exc:
                if attempt < len(addresses) and _never_connected(exc) and not deadline.expired:
                    continue
                raise _failure(exc, deadline) from exc
            with response:
                yield response
            return
        finally:
            adapter.close()


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    transient = status in (408, 429) or status >= 500
    raise FetchError(
        "http_error",
        f"The server answered {status} {response.reason}."
        + (" We will try again later." if transient else " Check the URL."),
        transient=transient,
    )


def _read_body(response: requests.Response, max_bytes: int, deadline: _Deadline) -> bytes:
    too_large = FetchError(
        "too_large", f"The image is larger than the {max_bytes:,}-byte limit.", transient=False
    )
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    if response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        raise FetchError(
            "unsupported_encoding", "The server sent the image compressed.", transient=False
        )
    body = bytearray()
    try:
        while piece := response.raw.read1(CHUNK, decode_content=False):
            body += piece
            if len(body) > max_bytes:
                raise too_large
    except (requests.RequestException, HTTPError, OSError) as exc:
        raise _failure(exc, deadline) from exc
    if deadline.expired:  # the shut socket looked like the end of the body
        raise _failure(None, deadline)
    return bytes(body)


def _never_connected(exc: requests.RequestException) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


def _failure(exc: BaseException | None, deadline: _Deadline) -> FetchError:
    if deadline.expired or isinstance(exc, requests.Timeout | TimeoutError):
        return FetchError(
            "timeout",
            f"The server did not send the image within {deadline.seconds:g} seconds.",
            transient=True,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchError(
            "tls_failed",
            "The server's TLS certificate is not valid for this host name.",
            transient=False,
        )
    if isinstance(exc, requests.exceptions.InvalidURL):
        return FetchError("bad_url", "The URL could not be used.", transient=False)
    return FetchError(
        "connection_failed",
        "The server could not be reached or dropped the connection. We will try again later.",
        transient=True,
    )


class _Deadline:
    """One time limit for a whole fetch; at expiry it shuts the fetch's sockets."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self._fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.ends

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: TLS wrapping detaches the original socket object, and ours
        # cannot be closed and reused for another file while we might still shut it.
        with self._lock:
            self._sockets.append(sock.dup())
            if self._fired:
                with contextlib.suppress(OSError):
                    self._sockets[-1].shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read on the same socket

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


class _PinnedAdapter(HTTPAdapter):
    """A requests transport that connects to one checked address whatever the URL says."""

    def __init__(self, address: str, host: str, deadline: _Deadline) -> None:
        self.address, self.host, self.deadline = address, host, deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _watched_pool(HTTPConnectionPool, HTTPConnection, self.deadline),
            "https": _watched_pool(HTTPSConnectionPool, HTTPSConnection, self.deadline),
        }

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.host  # SNI
            pool_kwargs["assert_hostname"] = self.host  # certificate must name the host, not the IP
        return host_params, pool_kwargs


def _watched_pool(pool: type, connection: type, deadline: _Deadline) -> type:
    """A pool class whose new sockets are watched by ``deadline``."""

    def _new_conn(self: Any) -> socket.socket:
        # urllib3's socket-creating hook: the one place a socket exists before TLS starts.
        sock = connection._new_conn(self)
        deadline.watch(sock)
        return sock

    watched = type(f"Watched{connection.__name__}", (connection,), {"_new_conn": _new_conn})
    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": watched})
