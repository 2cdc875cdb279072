"""Arachnid Shield (C3P): matches images against Project Arachnid's database of known child
sexual abuse material and harmful-abusive material.

Only for organisations C3P has approved (docs/integrations/arachnid.md). What leaves the server
is a setting: only the item's PDQ hash (``pdq``, the default), the image's bytes (``bytes``), or
the URL the platform sent, which Shield then fetches (``url``; items without a URL go as bytes).
Shield's ``classification`` becomes the label (``csam``, ``harmful_abusive_material``), and each
exact or near match is kept with its distance where Shield gives one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from app.plugins import ConnectionResult, ScanContext, Scanner, ScanOutcome, Setting, hookimpl
from plugins.arachnid import client
from plugins.arachnid.client import ArachnidRefused, ArachnidUnavailable
from plugins.arachnid.outcomes import media_outcome, pdq_outcome

# A made-up PDQ hash for "Test connection": random-looking bits that match nobody's picture.
TEST_HASH = client.pdq_as_base64(hashlib.sha256(b"modtools-image connection test").hexdigest())


class ArachnidScanner(Scanner):
    """A Shield classification other than ``no-known-match`` is a ``match``; else ``clear``."""

    name = "arachnid"
    title = "Arachnid Shield (C3P)"
    version = "1.0"
    description = (
        "Matches images against Project Arachnid's known child sexual abuse material, by PDQ "
        "hash (nothing else leaves the server), by image or by URL. For approved organisations."
    )
    timeout = 30.0  # uploads of large images; the SDKs allow 60 s
    settings = (
        Setting("username", "string", required=True, help="The API username C3P issued."),
        Setting(
            "password", "string", secret=True, required=True, help="The API password C3P issued."
        ),
        Setting(
            "mode",
            "choice",
            default="pdq",
            choices=[
                ("pdq", "Send only the PDQ hash"),
                ("bytes", "Send the image"),
                ("url", "Send the image's URL"),
            ],
            help="What leaves this server. PDQ sends a 32-byte hash and never the image; with "
            "URL, Shield fetches the image from the URL the platform sent (its host must be "
            "authorised for your account; items sent without a URL are sent as images).",
        ),
        Setting(
            "base_url",
            "url",
            default=client.DEFAULT_BASE_URL,
            required=True,
            label="Base URL",
            help="Change only if C3P gave you another endpoint.",
        ),
    )

    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Ask Shield about the image in the configured way; raise when it could not answer."""
        settings = ctx.settings
        where = (settings["base_url"], (settings["username"], settings["password"]))
        sent = settings["mode"]
        if sent == "url" and not ctx.image_url:
            sent = "bytes"  # the platform sent the image itself: there is no URL to give
        try:
            if sent == "pdq":
                if not ctx.pdq:
                    return _not_hashable(ctx)
                query = client.pdq_as_base64(ctx.pdq)
                return pdq_outcome(client.scan_pdq(*where, [query], ctx.timeout), query)
            if sent == "url":
                return media_outcome(client.scan_url(*where, ctx.image_url, ctx.timeout), sent)
            try:
                data = ctx.data()
            except LookupError as error:  # the image was purged: nothing to send
                raise ArachnidRefused(str(error), "image") from None
            mime = ctx.mime or "application/octet-stream"
            return media_outcome(client.scan_media(*where, data, mime, ctx.timeout), sent)
        except ArachnidRefused as refusal:  # credentials, or this image: no retry can help
            return refusal.outcome(sent)

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Look a made-up PDQ hash up: proves the credentials and the endpoint, sends no image."""
        try:
            answer = client.scan_pdq(
                settings["base_url"],
                (settings["username"], settings["password"]),
                [TEST_HASH],
                self.timeout,
            )
        except (ArachnidRefused, ArachnidUnavailable) as error:
            return ConnectionResult(False, str(error))
        if not isinstance(answer.get("scanned_hashes"), dict):
            return ConnectionResult(False, "Arachnid Shield answered without scanned_hashes.")
        return ConnectionResult(
            True,
            "Arachnid Shield accepted the username and password (checked with a made-up PDQ "
            "hash; no image was sent).",
        )


def _not_hashable(ctx: ScanContext) -> ScanOutcome:
    """No PDQ hash to send: the picture is too flat or blank for PDQ to say anything about it.

    Such hashes match far too much, so neither HMA nor our banks look them up; clear, with the
    reason kept, rather than send the image the admin chose not to send.
    """
    quality = ctx.pdq_quality
    return ScanOutcome(
        "clear",
        raw={
            "sent": "nothing",
            "skipped": f"no usable PDQ hash (quality {quality if quality is not None else '?'}, "
            "below 50): the picture is too flat to match",
        },
    )


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The Arachnid Shield scanner."""
    return [ArachnidScanner]
