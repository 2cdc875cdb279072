"""A loopback S3 for the media store tests: moto's standalone server, plus S3's upload check.

moto (``moto[server]``) answers the S3 API as AWS documents it, with one gap that matters here: it
stores a PUT whose body does not match its ``Content-MD5`` header. AWS S3 refuses such a request
with ``400 BadDigest`` ("The Content-MD5 you specified did not match what we received"), as do
MinIO and Ceph, so ``ContentMD5Check`` puts that refusal in front of moto.

moto keeps its buckets in this process, shared by every server started here; tests use a bucket
of their own. ``require_credentials`` switches on moto's IAM check (off by default: any key works).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterable
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

BAD_DIGEST = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>BadDigest</Code><Message>The '
    b"Content-MD5 you specified did not match what we received.</Message></Error>"
)


class ContentMD5Check:
    """WSGI middleware: refuse a PUT whose body does not match its Content-MD5, as S3 does."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        expected = environ.get("HTTP_CONTENT_MD5")
        if environ["REQUEST_METHOD"] == "PUT" and expected:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
            if base64.b64encode(hashlib.md5(body).digest()).decode() != expected:
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(BAD_DIGEST)))],
                )
                return [BAD_DIGEST]
        return self.app(environ, start_response)


class FakeS3:
    """moto's ThreadedMotoServer on 127.0.0.1 at a free port, checking Content-MD5."""

    def __init__(self) -> None:
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self._clients: dict[str, Any] = {}

    def start(self) -> FakeS3:
        """Start answering; ``url`` is the endpoint to configure."""
        self.moto.start()
        server = self.moto._server  # werkzeug's server: each request calls its ``app``
        assert server is not None
        server.app = ContentMD5Check(server.app)
        host, port = self.moto.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop answering and free the port."""
        self.moto.stop()

    def client(self, service: str = "s3") -> Any:
        """A plain boto3 client of moto's (any key works), to look in as an operator would."""
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id="operator",
                aws_secret_access_key="operator",
            )
        return self._clients[service]

    def require_credentials(self, required: bool) -> None:
        """Check every request's key and signature against moto's IAM users, or stop checking."""
        count = b"0" if required else b"inf"
        requests.post(f"{self.url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()
