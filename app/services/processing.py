"""The ``process_item`` job: fetch a URL item, PDQ-hash it, make the derived images, scan it.

The job runs after the item was accepted and may run again after a crash at any point, so every
step looks at what is already done: a URL item that has its bytes is not fetched again, a PDQ
hash that is there (quality set) is not computed again, derived images that exist are not made
again, and the scan starts only from ``received``. The picture is decoded at most once per run.

A fetch that fails for good, or for the last time, moves the item to ``fetch_failed`` with the
reason in words (and the job fails): an item is never dropped without a trace.
"""

from __future__ import annotations

import logging

from flask import current_app
from PIL import Image
from sqlalchemy import select

from app.extensions import db
from app.models.item import Item
from app.models.job import Job, JobStatus
from app.services import fetch, hashing, jobs, pipeline, storage
from app.services.audit import Actor
from app.services.ingest import (
    PROCESS_JOB,
    Limits,
    apply_media,
    check_image,
    derived_store,
    keep_image,
    original_store,
)
from app.services.media import MediaError, open_image
from app.services.states import Status, transition
from app.services.webhooks import credentials
from app.tasks import PROCESS

log = logging.getLogger(__name__)
PIPELINE = Actor.system("pipeline")
FETCHER = Actor.system("fetcher")


@jobs.handler(PROCESS_JOB)
def process_item(item_id: str) -> None:
    """Bring one item from ``received`` to the scan pipeline; safe to run any number of times."""
    item = db.session.get(Item, item_id)
    if item is None:
        raise jobs.PermanentJobError(f"item {item_id} does not exist")
    picture: Image.Image | None = None  # decoded once, for PDQ and previews alike
    if item.status == Status.FETCH_FAILED:
        return  # a person retries it; nothing to do until then
    if item.sha256 is None:
        if not item.image_url:
            _fail(item, "The item has neither an image nor an image URL.")
        try:
            picture = _fetch(item)
        except (jobs.PermanentJobError, fetch.FetchError):
            raise
        except Exception:
            # A fault of ours, not the URL's: retried like any job, but on the last attempt the
            # item must still end visibly failed rather than wait in "received" for ever.
            if _last_attempt(item_id):
                db.session.rollback()
                _fail(
                    db.session.get(Item, item_id) or item,
                    "The image could not be processed because of an error on this server "
                    "(it is in the server log). Send the item again later.",
                )
            raise
    if item.pdq_quality is None or not item.has_derivatives:
        picture = picture or _decode_original(item)
    if item.pdq_quality is None:  # an inline image: ingest answered before hashing its picture
        item.pdq, item.pdq_quality = hashing.pdq_of_picture(picture)
    if not item.has_derivatives:
        derived_store().save(item.sha256, storage.make_derivatives(picture))
        item.has_derivatives = True
    if item.status == Status.RECEIVED:
        pipeline.start_scan(item, PIPELINE, inline=True)
    db.session.commit()


def _fetch(item: Item) -> Image.Image:
    """Fetch, check and keep the item's image; its media fields are set, not yet committed."""
    config = current_app.config
    try:
        result = fetch.fetch_image(
            item.image_url,
            max_bytes=config["MAX_IMAGE_BYTES"],
            connect_timeout=config["FETCH_CONNECT_TIMEOUT"],
            total_timeout=config["FETCH_TOTAL_TIMEOUT"],
            allow_networks=config["FETCH_ALLOW_NETWORKS"],
            headers=credentials.fetch_headers(item),  # protected platform files (webhooks)
        )
    except fetch.FetchError as error:
        if error.transient and not _last_attempt(item.id):
            raise  # the job's backoff tries again
        _fail(item, f"The image could not be fetched: {error.message}")
    try:
        hashed = check_image(result.data, result.content_type)
    except MediaError as refusal:
        _fail(item, f"The image at the URL was refused: {refusal.message}")
    keep_image(result.data)
    apply_media(item, hashed, len(result.data))
    return hashed.picture


def _decode_original(item: Item) -> Image.Image:
    """The item's picture (upright RGB, ≤ 512 px), decoded from the stored original."""
    assert item.sha256 is not None
    _, image = open_image(
        original_store().get(item.sha256),
        reduce_to=hashing.PICTURE_SIDE,
        **Limits.from_config().keywords(),
    )
    return hashing.prepare_picture(image)


def _fail(item: Item, reason: str) -> None:
    """Record why the item has no image (committed), then stop the job without retrying."""
    transition(item, Status.FETCH_FAILED, FETCHER, reason)
    db.session.commit()
    log.info("item %s: %s", item.id, reason)
    raise jobs.PermanentJobError(reason)


def _last_attempt(item_id: str) -> bool:
    """True when the running ``process_item`` job of this item has no attempt left."""
    # The handler gets only the item id; its job row, claimed by this process, says the attempt.
    running = db.session.scalars(
        select(Job).where(
            Job.status == JobStatus.RUNNING,
            Job.name == PROCESS_JOB,
            Job.owner == PROCESS["worker_id"],
        )
    ).all()
    for job in running:
        if job.args == [item_id]:
            return job.attempts >= job.max_attempts
    return True  # run outside a job (a test, a shell): there is no retry to wait for
