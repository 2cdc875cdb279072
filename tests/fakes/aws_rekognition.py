"""A fake AWS Rekognition ``DetectModerationLabels`` (vendor-apis.md §6a), signature checked.

The AWS JSON 1.1 protocol: ``POST /`` with ``X-Amz-Target:
RekognitionService.DetectModerationLabels`` and ``Content-Type: application/x-amz-json-1.1``. The
fake verifies Signature Version 4 itself, from AWS's published algorithm and independently of
botocore: the ``Authorization`` header's shape (credential scope, signed headers including
``host`` and ``x-amz-date``, a 64-hex signature), an ``X-Amz-Date`` within 15 minutes, the
region and service in the scope, and the signature over the canonical request. Temporary keys
(``ASIA…``) need a signed ``X-Amz-Security-Token``.

The body needs ``Image.Bytes`` (base64 of a JPEG or PNG, at most 5 MB) and an optional
``MinConfidence`` from 0 to 100. Tests script ``labels`` as ``(name, parent, level,
confidence)``; those under ``MinConfidence`` are left out, as AWS does. Errors are HTTP 400/403/500
with ``{"__type", "message"}``. Behaviours: ``timeout``, ``throttle``, ``500``, ``bad-image``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime

from werkzeug.wrappers import Request, Response

from tests.fakes import FakeService

REGION = "eu-west-1"
ACCESS_KEY, SECRET_KEY = "AKIAFAKEREKOGNITION1", "fake/secret+key/for+sigv4+tests/0123456789"
TEMP_KEY, TEMP_SECRET, TEMP_TOKEN = "ASIAFAKETEMPORARY002", "temporary/secret/key", "FwoG-token=="
TARGET = "RekognitionService.DetectModerationLabels"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


class FakeRekognition(FakeService):
    """DetectModerationLabels with AWS's own signature checks."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[tuple[str, str, int, float]] = []

    def answer(self, request: Request) -> Response:
        """Signature, then protocol, then the scripted behaviour, then the labels."""
        behaviour = self.next_behaviour()
        if behaviour == "timeout":
            self.sleep_past_timeout()
        problem = check_signature(request)
        if problem:
            return aws_error(*problem)
        if request.headers.get("X-Amz-Target") != TARGET:
            return aws_error(400, "UnknownOperationException", "")
        if request.mimetype != "application/x-amz-json-1.1":
            return aws_error(400, "SerializationException", "Unexpected content type")
        if behaviour == "throttle":
            return aws_error(400, "ThrottlingException", "Rate exceeded")
        if behaviour == "500":
            return aws_error(500, "InternalServerError", "Internal server error")
        try:
            body = json.loads(request.get_data())
            data = base64.b64decode(body["Image"]["Bytes"], validate=True)
            minimum = float(body.get("MinConfidence", 50))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return aws_error(400, "InvalidParameterException", "Request has invalid parameters")
        if not 0 <= minimum <= 100:
            return aws_error(400, "InvalidParameterException", "MinConfidence is out of range")
        if len(data) > 5 * 1024 * 1024:
            return aws_error(400, "ImageTooLargeException", "Image size is too large.")
        if behaviour == "bad-image" or not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
            return aws_error(400, "InvalidImageFormatException", "Request has invalid image format")
        found = [
            {"Confidence": confidence, "Name": name, "ParentName": parent, "TaxonomyLevel": level}
            for name, parent, level, confidence in self.labels
            if confidence >= minimum
        ]
        body = {"ModerationLabels": found, "ModerationModelVersion": "7.0", "ContentTypes": []}
        return Response(json.dumps(body), 200, content_type="application/x-amz-json-1.1")


def check_signature(request: Request) -> tuple[int, str, str] | None:
    """Why AWS would refuse this request's SigV4 signature, or None when it is right."""
    match = AUTHORIZATION.match(request.headers.get("Authorization", ""))
    if not match:
        return 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 400, "IncompleteSignatureException", "X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z'"
    if abs((datetime.now(UTC) - when).total_seconds()) > 900 or amz_date[:8] != match["date"]:
        return 403, "InvalidSignatureException", "Signature expired or not yet valid"
    secrets = {ACCESS_KEY: SECRET_KEY, TEMP_KEY: TEMP_SECRET}
    if match["key"] not in secrets:
        return 400, "UnrecognizedClientException", "The security token included is invalid."
    if (match["region"], match["service"]) != (REGION, "rekognition"):
        return 403, "InvalidSignatureException", "Credential should be scoped to a valid region."
    signed = match["signed"].split(";")
    token = request.headers.get("X-Amz-Security-Token")
    if match["key"] == TEMP_KEY and (token != TEMP_TOKEN or "x-amz-security-token" not in signed):
        return 400, "UnrecognizedClientException", "The security token included is invalid."
    if "host" not in signed or "x-amz-date" not in signed:
        return 403, "InvalidSignatureException", "host and x-amz-date must be signed."
    canonical = "\n".join(
        [
            request.method,
            "/",
            "",
            *(f"{name}:{' '.join(request.headers.get(name, '').split())}" for name in signed),
            "",
            match["signed"],
            hashlib.sha256(request.get_data()).hexdigest(),
        ]
    )
    scope = f"{match['date']}/{REGION}/rekognition/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secrets[match["key"]]).encode()
    for part in (match["date"], REGION, "rekognition", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return 403, "InvalidSignatureException", "The request signature does not match."
    return None


def aws_error(status: int, kind: str, message: str) -> Response:
    """An AWS JSON 1.1 error: ``__type`` and ``message``."""
    return Response(
        json.dumps({"__type": kind, "message": message}),
        status,
        content_type="application/x-amz-json-1.1",
        headers={"x-amzn-ErrorType": kind},
    )
