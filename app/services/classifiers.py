"""What the image classifier plugins share: thresholds, verdicts, failures retrying cannot fix.

Each classifier (NudeNet on this server; Hive, Google Vision, AWS Rekognition, Azure Content
Safety and Sightengine outside) subclasses ``ClassifierScanner`` and writes ``classify``: send the
image, turn the answer into labels (``app.services.labels``). This module turns labels into a
verdict with the operator's thresholds, and failures into the right kind:

- ``Refusal``: retrying cannot help (bad credentials, a plan without the model, an image the
  service cannot read, the classifier not installed). The scan ends at once with verdict
  ``error`` and the service's message in its raw record: it is not retried.
- any other exception, such as ``ServiceBusy`` for 429 and 5xx answers, or a network error: the
  pipeline retries with backoff (``app.services.pipeline``).
"""

from __future__ import annotations

import io
import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, ClassVar

from app.plugins import ConnectionResult, ScanContext, Scanner, ScanOutcome, Setting
from app.services import labels as vocabulary

LABEL_FLOOR = 0.01  # lower scores stay in the raw answer, not among the item's labels
THRESHOLD_LINE = re.compile(r"^(?P<name>[^=#]+?)\s*=\s*(?P<value>\S+)$")


class Refusal(Exception):
    """The service refused, or could not judge this image: a final ``error`` verdict."""

    def __init__(
        self, message: str, kind: str = "image", status: int | None = None, answer: Any = None
    ) -> None:
        super().__init__(message)
        self.message, self.kind, self.status, self.answer = message, kind, status, answer

    def outcome(self) -> ScanOutcome:
        """The scan outcome that records this refusal (the pipeline does not retry it)."""
        raw = {"error": self.message, "error_kind": self.kind, "http_status": self.status}
        return ScanOutcome("error", raw={**raw, "answer": self.answer})


class ServiceBusy(Exception):
    """The service is rate-limiting us or failing (429, 5xx): the pipeline tries again later."""


def thresholds_setting(default: str, help_text: str) -> Setting:
    """The ``thresholds`` setting every classifier has, with its own defaults."""
    return Setting(
        "thresholds",
        "multiline",
        default=default,
        label="Flag thresholds",
        help=help_text + " One name=threshold per line (0 to 1): a label name, or one of our "
        "categories (adult_nudity, violence_gore …) for every label in it. A label at or above "
        "its threshold flags the image. Lines starting with # are notes.",
    )


def send_url_setting(service: str) -> Setting:
    """The ``send_url`` setting: the image's URL instead of its bytes, when the item has one."""
    return Setting(
        "send_url",
        "boolean",
        default=False,
        label="Send the image's URL when there is one",
        help=f"{service} then fetches the image itself, so the URL must be reachable from the "
        "internet. Items sent without a URL are always uploaded.",
    )


def sends_url(ctx: ScanContext) -> bool:
    """True when the operator chose to send URLs and this item has one."""
    return bool(ctx.settings.get("send_url") and ctx.image_url)


def parse_thresholds(text: str | None, known: Iterable[str] | None = None) -> dict[str, float]:
    """``{casefolded name: threshold}`` from ``name=threshold`` lines; raises ValueError.

    With ``known``, a name must be one of them or a category: a typo would silently never flag.
    """
    allowed = {name.casefold() for name in known} if known is not None else None
    found: dict[str, float] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = THRESHOLD_LINE.match(line)
        if not match:
            raise ValueError(f"Flag thresholds, line {number} ({line!r}): write name=0.8.")
        name, value = match["name"].strip().casefold(), match["value"]
        try:
            threshold = float(value)
        except ValueError:
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(
                f"Flag thresholds, line {number}: {value!r} is not a number from 0 to 1."
            )
        if allowed is not None and name not in allowed and name not in vocabulary.CATEGORIES:
            raise ValueError(
                f"Flag thresholds, line {number}: {match['name'].strip()!r} is neither a label "
                "of this scanner nor a category. docs/classifiers.md lists both."
            )
        found[name] = threshold
    return found


def flagging(labels: Iterable[Mapping[str, Any]], thresholds: Mapping[str, float]) -> list[str]:
    """The names of labels at or above their threshold (by label name, else by category)."""
    hits = []
    for label in labels:
        score = label.get("score")
        name = str(label["name"]).casefold()
        limit = thresholds.get(name)
        if limit is None and label.get("category"):
            limit = thresholds.get(str(label["category"]))
        if score is not None and limit is not None and score >= limit:
            hits.append(str(label["name"]))
    return hits


def http_failure(service: str, status: int, detail: str, credentials: str) -> Exception:
    """The exception for a failed HTTP answer: Refusal (final) or ServiceBusy (retried)."""
    if status in (401, 403):
        return credentials_refusal(service, status, detail, credentials)
    if status in (408, 429) or status >= 500:
        return ServiceBusy(f"{service} is busy or failing (HTTP {status}): {detail}")
    return Refusal(f"{service} could not judge this image (HTTP {status}): {detail}", status=status)


def credentials_refusal(service: str, status: int, detail: str, credentials: str) -> Refusal:
    """The final failure for credentials the service does not accept, saying what to check."""
    return Refusal(
        f"{service} refused the credentials (HTTP {status}): {detail} Check {credentials} in "
        "this scanner's settings.",
        kind="credentials",
        status=status,
    )


def reply_detail(reply: Any) -> str:
    """The service's own error message from a ``requests`` reply, short, for people to read."""
    try:
        body = reply.json()
    except ValueError:
        return (reply.text or reply.reason or "no message").strip()[:300]
    if isinstance(body, dict):
        error = body.get("error")
        for candidate in (error, body):
            if isinstance(candidate, dict):
                for key in ("message", "Message", "detail"):
                    if candidate.get(key):
                        return str(candidate[key])[:300]
        if isinstance(error, str):
            return error[:300]
    return str(body)[:300]


@lru_cache(maxsize=1)
def grey_picture() -> bytes:
    """A small plain grey JPEG for connection tests: big enough for every service's minimum."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (128, 128, 128)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class ClassifierScanner(Scanner):
    """A scanner that classifies an image into scored labels and flags by thresholds."""

    service: ClassVar[str] = ""  # the vendor's name, as people know it
    strict_names: ClassVar[bool] = True  # the vocabulary lists every label the service has

    @abstractmethod
    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Ask the service about ``ctx``'s image: ``(labels, raw answer)``; raise on failure."""

    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Classify, keep the labels worth showing, and flag by the operator's thresholds."""
        try:
            thresholds = self.thresholds(ctx.settings)
        except ValueError as error:  # no retry fixes a setting
            return Refusal(str(error), kind="settings").outcome()
        try:
            labels, raw = self.classify(ctx)
        except Refusal as refusal:
            return refusal.outcome()
        shown = [label for label in labels if (label.get("score") or 0.0) >= LABEL_FLOOR]
        shown.sort(key=lambda label: -(label.get("score") or 0.0))
        verdict = "flag" if flagging(shown, thresholds) else "clear"
        return ScanOutcome(verdict, labels=shown, raw=raw)

    def thresholds(self, settings: Mapping[str, Any]) -> dict[str, float]:
        """The operator's thresholds; raises ValueError saying which line is wrong."""
        known = vocabulary.known_labels(self.name) if self.strict_names else None
        return parse_thresholds(settings.get("thresholds"), known)

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Check the thresholds, then classify a small grey picture with these settings."""
        try:
            self.thresholds(settings)
        except ValueError as error:
            return ConnectionResult(False, str(error))
        try:
            self.classify(self.test_context(settings))
        except Refusal as refusal:
            return ConnectionResult(False, refusal.message)
        except ServiceBusy as busy:
            return ConnectionResult(False, f"{busy} Try again in a minute.")
        message = f"{self.service} accepted the credentials and classified a test picture."
        unknown = self.unknown_names(settings)
        if unknown:
            message += f" Not in our vocabulary (check the spelling): {', '.join(unknown)}."
        return ConnectionResult(True, message)

    def unknown_names(self, settings: Mapping[str, Any]) -> list[str]:
        """Threshold names that are neither a label we know for this service nor a category."""
        known = {raw.casefold() for raw in vocabulary.known_labels(self.name)}
        names = parse_thresholds(settings.get("thresholds"))
        return sorted(n for n in names if n not in known and n not in vocabulary.CATEGORIES)

    def test_context(self, settings: Mapping[str, Any]) -> ScanContext:
        """A scan context for the connection test's grey picture (sent as bytes, never a URL)."""
        picture = grey_picture()
        return ScanContext(
            sha256=None, md5=None, pdq=None, pdq_quality=None, mime="image/jpeg",
            size=len(picture), image_url=None, settings=settings, timeout=self.timeout,
            _data=picture,
        )  # fmt: skip
