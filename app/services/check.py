"""The synchronous check: is this image known-bad, before the platform publishes it?

The image is checked and hashed once, with the same checks as ``ingest.check_image`` (type,
size, bomb limits, SHA-256, MD5, PDQ), but with the picture decoded and hashed on a helper thread
while the request's thread digests the bytes and reads the scanner settings; a colour JPEG is
decoded as brightness only, all PDQ looks at (``hashing.hash_luma``). Then only the switched-on
``fast`` scanners (the hash banks by default) look at it in this process. Each match's bank
labels map to a verdict through ``CHECK_VERDICTS``; the strictest wins. Nothing here ever answers
"allow" because something broke: a scanner that raises, times out or has no rate-limit token
left makes the whole check fail (``CheckFailed``), and the API answers 5xx, so an upload
pipeline fails closed or retries.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Flask, current_app

from app.models.scan import Verdict
from app.models.source import Source
from app.plugins import ScanContext, ScanOutcome
from app.services import hashing, ingest, scanning
from app.services.audit import Actor
from app.services.pipeline import public_match
from app.services.plugin_settings import enabled_scanners
from app.services.sources import SourceRef
from app.services.submission import Submission

DEFAULT_VERDICTS = {"csam": "block", "terrorism": "block", "ncii": "block", "*": "review"}
SEVERITY = {"allow": 0, "review": 1, "block": 2}
DEFAULT_SCANNER_TIMEOUT = 2.0
HELPERS_KEY = "modtools_check_helpers"


class CheckFailed(Exception):
    """A fast scanner could not answer, so neither can the check. ``status``: 503 or 500."""

    def __init__(self, code: str, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class CheckAnswer:
    """What the platform is told: block, review or allow, why, and the image's hashes."""

    verdict: str
    matches: list[dict[str, Any]]
    sha256: str
    pdq: str | None
    pdq_quality: int
    scanners: list[str] = field(default_factory=list)
    item_id: str | None = None
    item_status: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The API's answer body."""
        body: dict[str, Any] = {
            "verdict": self.verdict,
            "matches": self.matches,
            "sha256": self.sha256,
            "pdq": self.pdq,
            "pdq_quality": self.pdq_quality,
            "scanners": self.scanners,
        }
        if self.item_id is not None:
            body["item"] = {"id": self.item_id, "status": self.item_status}
        return body


def check_image(
    data: bytes,
    *,
    source: Source | SourceRef,
    actor: Actor,
    declared_type: str | None = None,
    enqueue: bool = False,
    external_id: str | None = None,
) -> CheckAnswer:
    """Check ``data`` against the fast scanners; with ``enqueue`` also accept it as an item.

    ``source`` is only needed to enqueue, so a ``SourceRef`` (no database load) will do.
    Raises ``MediaError`` for an image we refuse and ``CheckFailed`` when a scanner cannot answer.
    """
    limits = ingest.Limits.from_config()
    # JPEG decoding, resizing and hashlib release the GIL, so with a second core free the digests
    # and the settings query cost no wall time beside the decode (bench/results.md, check).
    picture = helper_threads(current_app).submit(
        hashing.hash_luma, data, declared_type=declared_type, **limits.keywords()
    )
    sha256, md5 = hashing.file_digests(data)
    scanners = enabled_scanners(fast_only=True)
    checked = picture.result().with_digests(sha256, md5)  # raises MediaError for a refusal
    hashes = checked.hashes
    table = verdict_table(current_app.config.get("CHECK_VERDICTS", DEFAULT_VERDICTS))
    cap = float(current_app.config.get("CHECK_SCANNER_TIMEOUT", DEFAULT_SCANNER_TIMEOUT))
    verdict, matches, names = "allow", [], []
    for scanner, settings in scanners:
        names.append(scanner.name)
        if scanner.rate_limit and scanning.take_token(scanner.name, scanner.rate_limit):
            raise CheckFailed(
                "scanner_busy",
                f"The {scanner.name} scanner is at its rate limit; retry in a few seconds.",
            )
        ctx = ScanContext(
            sha256=hashes.sha256,
            md5=hashes.md5,
            pdq=hashes.pdq,
            pdq_quality=hashes.pdq_quality,
            mime=checked.info.mime,
            size=len(data),
            image_url=None,
            settings=settings,
            timeout=min(scanner.timeout, cap),
            loader=lambda: data,
        )
        try:
            outcome = scanning.call_scanner(scanner, ctx)
        except Exception as error:
            message = scanning.describe_error(error, scanning.secrets_of(scanner, settings))
            current_app.logger.error("check: scanner %s failed: %s", scanner.name, message)
            raise CheckFailed(
                "scanner_failed",
                f"The {scanner.name} scanner could not check "
                "the image; retry, or hold the upload for review.",
            ) from error
        if outcome.verdict == Verdict.ERROR:
            raise CheckFailed(
                "scanner_failed",
                f"The {scanner.name} scanner could not judge "
                "this image; hold the upload for review.",
            )
        verdict = max(verdict, verdict_of(outcome, table), key=SEVERITY.__getitem__)
        matches += [{"scanner": scanner.name, **public_match(m)} for m in outcome.matches]
    answer = CheckAnswer(verdict, matches, hashes.sha256, hashes.pdq, hashes.pdq_quality, names)
    if not enqueue:
        return answer
    submission = Submission(
        external_id=external_id or f"sha256:{hashes.sha256}",
        image_data=data,
        declared_type=declared_type,
    )
    item = ingest.accept_item(source, submission, actor, limits, hashed=checked).item
    return replace(answer, item_id=item.id, item_status=item.status)


def helper_threads(app: Flask) -> ThreadPoolExecutor:
    """The app's threads that decode and hash pictures for checks; as many as web threads, so
    a check never queues for one."""
    with _helpers_lock:
        pool = app.extensions.get(HELPERS_KEY)
        if pool is None:
            pool = app.extensions[HELPERS_KEY] = ThreadPoolExecutor(
                max_workers=int(app.config.get("WEB_THREADS", 8)),
                thread_name_prefix="check-hashing",
            )
    return pool


_helpers_lock = threading.Lock()


def verdict_of(outcome: ScanOutcome, table: Mapping[str, str]) -> str:
    """The verdict one scanner's outcome earns: the strictest over its labels."""
    if outcome.verdict not in (Verdict.MATCH, Verdict.FLAG):
        return "allow"
    labels = [label for match in outcome.matches for label in match.get("labels") or []]
    labels += [label["name"] for label in outcome.labels]
    verdicts = [table.get(str(label).lower(), table["*"]) for label in labels] or [table["*"]]
    return max(verdicts, key=SEVERITY.__getitem__)


def verdict_table(configured: Mapping[str, str]) -> dict[str, str]:
    """``CHECK_VERDICTS`` checked: every value block, review or allow; "*" always present."""
    table = {"*": "review", **{str(k).lower(): str(v).lower() for k, v in configured.items()}}
    wrong = sorted(k for k, v in table.items() if v not in SEVERITY)
    if wrong:
        raise CheckFailed(
            "misconfigured",
            f"CHECK_VERDICTS gives {wrong[0]!r} a verdict other than block, review or allow.",
            status=500,
        )
    return table
