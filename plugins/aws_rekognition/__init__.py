"""AWS Rekognition DetectModerationLabels: moderation labels in three levels, with confidences.

One AWS JSON 1.1 call (``X-Amz-Target: RekognitionService.DetectModerationLabels``) with the
image's bytes, signed with Signature Version 4 by botocore's own signer (``SigV4Auth`` on an
``AWSRequest``): no hand-made cryptography. Rekognition reads JPEG and PNG up to 5 MB, so other
types (WebP, GIF: the first frame) and larger images are re-encoded here as a JPEG first.

Labels keep Rekognition's names; the score is ``Confidence / 100``. Each label's category comes
from its own name, else from its parent's (a level-3 label the vocabulary does not list yet).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import requests

from app.plugins import ScanContext, Scanner, Setting, hookimpl
from app.services import labels as vocabulary
from app.services.classifiers import (
    ClassifierScanner,
    Refusal,
    ServiceBusy,
    credentials_refusal,
    http_failure,
    thresholds_setting,
)

TARGET = "RekognitionService.DetectModerationLabels"
MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096  # when re-encoding: plenty for moderation, well under the byte limit
BUSY = {"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"}
BAD_CREDENTIALS = {
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignature", "MissingAuthenticationTokenException", "ExpiredTokenException",
    "InvalidClientTokenId", "SignatureDoesNotMatch",
}  # fmt: skip
DEFAULT_THRESHOLDS = """\
Explicit=0.8
Explicit Nudity=0.8
Graphic Violence=0.8
Graphic Violence Or Gore=0.8
Visually Disturbing=0.8
Hate Symbols=0.8
"""


class RekognitionScanner(ClassifierScanner):
    """Rekognition's moderation labels at or above ``min_confidence``."""

    name = "aws_rekognition"
    service = "AWS Rekognition"
    title = "AWS Rekognition moderation"
    version = "1.0"
    description = (
        "Sends each image's bytes to Amazon Rekognition (DetectModerationLabels): explicit and "
        "non-explicit nudity, swimwear, violence, disturbing images, drugs, alcohol, gambling, "
        "rude gestures, hate symbols."
    )
    strict_names = False  # the taxonomy grows with each model version
    timeout = 15.0
    rate_limit = 300  # 5 calls a second: the smallest regions' default quota
    settings = (
        Setting("region", default="us-east-1", help="Such as eu-west-1."),
        Setting("access_key_id", required=True, label="Access key ID"),
        Setting("secret_access_key", secret=True, required=True, label="Secret access key"),
        Setting(
            "session_token",
            secret=True,
            label="Session token",
            help="Only for temporary credentials.",
        ),
        Setting(
            "endpoint",
            "url",
            help="Leave empty for https://rekognition.<region>.amazonaws.com (a VPC or FIPS "
            "endpoint goes here).",
        ),
        Setting(
            "min_confidence",
            "number",
            default=50,
            min=0,
            max=100,
            label="Minimum confidence",
            help="Rekognition leaves out labels below this confidence (percent). Its default: 50.",
        ),
        thresholds_setting(
            DEFAULT_THRESHOLDS,
            "Rekognition label names, any level: Explicit, Explicit Nudity, Violence, Weapons, "
            "Visually Disturbing, Drugs & Tobacco, Hate Symbols …",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Call DetectModerationLabels; one label per moderation label in the answer."""
        settings = ctx.settings
        region = settings["region"].strip()
        endpoint = settings.get("endpoint") or f"https://rekognition.{region}.amazonaws.com"
        url = endpoint.rstrip("/") + "/"
        body = json.dumps(
            {
                "Image": {"Bytes": base64.b64encode(_jpeg_or_png(ctx)).decode()},
                "MinConfidence": float(settings["min_confidence"]),
            }
        ).encode()
        headers = _signed_headers(settings, region, url, body)
        reply = requests.post(url, data=body, headers=headers, timeout=ctx.timeout)
        if reply.status_code != 200:
            raise _failure(reply)
        answer = reply.json()
        found = answer.get("ModerationLabels") or []
        parents = {entry["Name"]: entry.get("ParentName") or "" for entry in found}
        labels = []
        for entry in found:
            label = vocabulary.make_label(self.name, entry["Name"], entry["Confidence"] / 100)
            ancestor = parents.get(entry["Name"], "")
            for _ in range(3):  # the taxonomy has three levels; a loop in an answer ends here
                if label["category"] or not ancestor:
                    break
                label["category"] = vocabulary.categorize(self.name, ancestor)
                ancestor = parents.get(ancestor, "")
            labels.append(label)
        return labels, answer


def _signed_headers(settings: Any, region: str, url: str, body: bytes) -> dict[str, str]:
    """The request's headers with botocore's SigV4 ``Authorization`` and ``X-Amz-Date``."""
    from botocore.auth import SigV4Auth  # imported when used: botocore is large
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET},
    )
    credentials = Credentials(
        settings["access_key_id"].strip(),
        settings["secret_access_key"],
        settings.get("session_token") or None,
    )
    SigV4Auth(credentials, "rekognition", region).add_auth(request)
    return dict(request.headers.items())


def _jpeg_or_png(ctx: ScanContext) -> bytes:
    """The image as Rekognition reads it: JPEG or PNG under 5 MB, re-encoded when it is not."""
    data = ctx.data()
    if ctx.mime in ("image/jpeg", "image/png") and len(data) <= MAX_BYTES:
        return data
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except OSError as error:
        raise Refusal(f"This image cannot be converted for Rekognition: {error}") from None
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _failure(reply: requests.Response) -> Exception:
    """AWS puts the error's type in ``__type`` (throttling is a 400, not a 429)."""
    try:
        body = reply.json()
    except ValueError:
        body = {}
    kind = str(body.get("__type") or reply.headers.get("x-amzn-ErrorType") or "").split("#")[-1]
    kind = kind.split(":")[0]
    detail = f"{kind}: {body.get('Message') or body.get('message') or reply.text[:300]}"
    status = reply.status_code
    if kind in BUSY:
        return ServiceBusy(f"AWS Rekognition is busy or failing (HTTP {status}): {detail}")
    if kind in BAD_CREDENTIALS:
        return credentials_refusal("AWS Rekognition", status, detail, CREDENTIALS)
    return http_failure("AWS Rekognition", status, detail, CREDENTIALS)


CREDENTIALS = "the region, access key ID, secret access key (and session token)"


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The AWS Rekognition moderation scanner."""
    return [RekognitionScanner]
