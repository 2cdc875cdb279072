"""Manual ingest: moderators upload images by hand, through the same ingest service as the API.

The page is an ordinary multipart form that works without JavaScript. ``static/js/upload.js``
enhances it with drag and drop and sends each file in its own request (with a progress bar),
asking for the one-row fragment instead of the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, request
from werkzeug.datastructures import FileStorage

from app.htmx import render_page_or_fragment
from app.models.source import Source
from app.models.user import Role
from app.security import role_required
from app.services.media import MediaError, read_limited
from app.services.sources import get_manual_source
from app.views import request_actor

bp = Blueprint("ingest", __name__, url_prefix="/ingest")

PAGE = "ingest/upload.html"
FRAGMENT = "ingest/_results.html"
MAX_NOTE_LENGTH = 5000


@dataclass(frozen=True)
class UploadResult:
    """What happened to one uploaded file, in the words shown to the moderator."""

    filename: str
    item_id: str | None = None
    created: bool = False
    error: str | None = None


@bp.route("/upload", methods=["GET", "POST"])
@role_required(Role.MODERATOR)
def upload():
    """Show the upload form; on POST, ingest each file and show what became of it."""
    source = get_manual_source()
    if request.method == "GET":
        return render_page_or_fragment(PAGE, FRAGMENT, source=source, results=[], note="")
    files = [f for f in request.files.getlist("images") if f.filename or f.content_length]
    note = (request.form.get("note") or "").strip()[:MAX_NOTE_LENGTH]
    error = None
    if not files:
        error = "Choose at least one image to upload."
    elif not source.enabled:
        error = (
            "Manual uploads are switched off. An admin can switch them on again on the page "
            "of the source “Manual uploads”."
        )
    if error:
        response = render_page_or_fragment(
            PAGE, FRAGMENT, source=source, results=[], note=note, error=error
        )
        response.status_code = 400
        return response
    results = [_ingest_one(source, upload, note or None) for upload in files]
    return render_page_or_fragment(PAGE, FRAGMENT, source=source, results=results, note=note)


def _ingest_one(source: Source, upload: FileStorage, note: str | None) -> UploadResult:
    # Imported here: the ingest service is the API's, and it imports much of the app.
    from app.services.ingest import ingest_upload

    filename = upload.filename or "unnamed file"
    try:
        data = read_limited(upload.stream, current_app.config["MAX_IMAGE_BYTES"])
        item, created = ingest_upload(
            source,
            data,
            filename=filename,
            declared_type=upload.mimetype or None,
            context_text=note,
            actor=request_actor(),
        )
    except MediaError as refusal:
        return UploadResult(filename, error=refusal.message)
    return UploadResult(filename, item_id=item.id, created=created)
