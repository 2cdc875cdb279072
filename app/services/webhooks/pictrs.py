"""pict-rs external validation: pict-rs asks us, synchronously, whether to keep each upload.

pict-rs POSTs the processed file's bytes (``Content-Type`` is its media type) to the configured
``external_validation`` URL and keeps the file only if the answer is 2xx; anything else, a
timeout (``external_validation_timeout``, 30 s by default) or a network error fails the upload.
It sends no credentials at all, so the URL carries an unguessable path token:
``/hooks/<slug>/<path token>``. Only the token's SHA-256 is kept, in the source's
``pictrs_path_token_sha256`` setting; the token is shown once, when issued.

The image goes through the synchronous check (``app.services.check``): ``block`` is answered
403, an image we cannot read 422, a scanner that cannot answer 503, and any other failure 500;
only ``review`` and ``allow`` are 2xx, so nothing is ever accepted by accident. With the source
setting ``enqueue_accepted`` true, accepted images also become items for review.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app

from app.models.source import Source, SourceKind
from app.services import check, ingest, sources
from app.services.audit import Actor
from app.services.media import MediaError, Readable
from app.services.submission import Submission
from app.services.webhooks import HookRefused
from app.services.webhooks.receive import Answer, find_source, read_body
from app.services.webhooks.replay import record_receipt

TOKEN_SETTING = "pictrs_path_token_sha256"


def issue_path_token(source: Source, actor: Actor) -> str:
    """A new path token for a pict-rs source (the old one stops working); returned only here."""
    token = secrets.token_urlsafe(32)
    settings = dict(source.settings or {})
    settings[TOKEN_SETTING] = hashlib.sha256(token.encode()).hexdigest()
    sources.update_source(source, actor, settings=settings)
    return token


def issue_path_token_if_pictrs(source: Source, actor: Actor) -> str | None:
    """A new path token when ``source`` is a pict-rs source (shown once), else None.

    Called when a source is created or its secret rotated, by the admin page and the CLI alike.
    """
    if source.kind != SourceKind.PICTRS:
        return None
    return issue_path_token(source, actor)


def validation_path(slug: str, token: str) -> str:
    """The path to put in pict-rs' ``external_validation`` URL, after our public address."""
    return f"/hooks/{slug}/{token}"


def path_token_matches(source: Source, token: str) -> bool:
    """Whether ``token`` is the source's path token, compared in constant time."""
    stored = str((source.settings or {}).get(TOKEN_SETTING) or "")
    given = hashlib.sha256(token.encode()).hexdigest()
    # Compared even when nothing is stored, so the answer takes as long either way.
    return hmac.compare_digest(stored.encode() or b"-", given.encode()) and bool(stored)


def validate_upload(
    slug: str,
    token: str,
    stream: Readable,
    content_length: int | None,
    content_type: str | None,
    ip: str | None,
) -> Answer:
    """Check one upload for pict-rs; raises HookRefused (logged) for every non-2xx answer."""
    source = find_source(slug, {"pictrs"})
    try:
        if not path_token_matches(source, token):
            raise HookRefused(401, "bad_path_token", "The path token in the URL is wrong.")
        if not source.enabled:
            raise HookRefused(403, "source_disabled", "The source is disabled in Modtools Image.")
        data = read_body(stream, content_length, int(current_app.config["MAX_IMAGE_BYTES"]))
        declared = content_type if (content_type or "").startswith("image/") else None
        actor = Actor.for_source(source, ip)
        try:
            answer = check.check_image(data, source=source, actor=actor, declared_type=declared)
        except MediaError as refusal:
            raise HookRefused(422, refusal.code, refusal.message) from None
        except check.CheckFailed as failure:
            raise HookRefused(failure.status, failure.code, failure.message) from None
        if answer.verdict == "block":
            raise HookRefused(403, "blocked", "The image matches a blocked hash.")
        created = 0
        if (source.settings or {}).get("enqueue_accepted") is True:
            submission = Submission(
                external_id=f"sha256:{answer.sha256}",
                image_data=data,
                declared_type=declared,
                metadata={"platform": "pictrs", "verdict": answer.verdict},
            )
            created = int(ingest.accept_item(source, submission, actor).created)
    except HookRefused as refusal:
        record_receipt(
            source,
            event="validate",
            status="refused",
            http_status=refusal.status,
            error=refusal.message,
        )
        raise
    record_receipt(
        source,
        event="validate",
        status="accepted",
        http_status=200,
        error=f"verdict {answer.verdict}",
        items_created=created,
    )
    return Answer(200, {"verdict": answer.verdict, "sha256": answer.sha256})
