"""Posting a signed callback without letting the URL reach into our own network.

The URL is checked with the image fetcher's SSRF rules (``app.services.fetch``): http(s) only, no
credentials, every resolved address public unless ``CALLBACK_ALLOW_NETWORKS`` opens a range, and
the connection pinned to the checked address. Redirects are not followed: a callback that moved
must be configured at its new URL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter

import requests

from app.services import fetch

SUMMARY_BYTES = 500


@dataclass(frozen=True)
class Delivery:
    """What one POST got: the status (None when nothing came back), time taken, a short answer."""

    status: int | None
    duration_ms: int
    summary: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_networks: Sequence[str] = (),
) -> Delivery:
    """POST ``body`` to ``url``; raises FetchError when the URL itself is refused."""
    allowed = [ipaddress.ip_network(network, strict=False) for network in allow_networks]
    target = fetch._parse(url)
    addresses = fetch._resolve(target, allowed)  # refused before any connection is made
    request = requests.Request(
        "POST",
        url,
        data=body,
        headers={
            "Host": target.host_header,
            "User-Agent": "ModtoolsImage-Webhooks/1.0",
            "Content-Type": "application/json",
            **headers,
        },
    ).prepare()
    deadline = fetch._Deadline(timeout)
    started = perf_counter()
    try:
        with fetch._exchange(
            request, target, addresses, deadline, min(5.0, timeout), None
        ) as answer:
            summary = answer.raw.read(SUMMARY_BYTES, decode_content=False) or b""
            status = answer.status_code
    except fetch.FetchError as error:
        return Delivery(None, _ms(started), "", error.message)
    except (requests.RequestException, OSError) as error:
        return Delivery(None, _ms(started), "", f"{type(error).__name__}: connection failed")
    finally:
        deadline.cancel()
    text = summary.decode("utf-8", "replace").strip()
    return Delivery(status, _ms(started), text, None if 200 <= status < 300 else f"HTTP {status}")


def _ms(started: float) -> int:
    return round((perf_counter() - started) * 1000)
