"""Demo data: a demo source, a demo spam bank and about fifty synthetic images to review.

Every picture is drawn here with Pillow (shapes and words; never a real image). A few "spam
cards" go into the demo bank; some of the items are the same cards with small edits (a crop, a
brightness change, a sticker), so the hash-bank scanner matches them by PDQ distance and the
similar-images panel clusters them.

Everything is marked: the source has ``settings = {"demo": true}`` and the bank's description
says it is demo data. :func:`remove_demo` deletes the demo items, their media (unless a real
item has the same bytes), the source and the bank in one step. Audit events stay: the log is
append-only.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageEnhance
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models.bank import Bank, ChangeOp
from app.models.item import Item
from app.models.source import Source
from app.services import audit, banks, hashing, jobs, sources
from app.services.audit import Actor

DEMO_SOURCE_NAME = "Demo forum"
DEMO_BANK_NAME = "Demo spam bank"
DEMO_BANK_DESCRIPTION = (
    "Demo data: synthetic spam cards made by `flask demo`. Remove it with "
    "`flask --app wsgi demo --remove` or the button on the queue page."
)
DEMO_COUNT = 50
LOAD_JOB = "demo.load"
SPAM_WORDS = ("BUY NOW", "FREE COINS", "CLICK HERE", "WIN BIG")
UPLOADERS = [
    ("u-101", "sunny_days"),
    ("u-102", "marco.p"),
    ("u-103", "cat_person"),
    ("u-104", "deals4you"),
    ("u-105", "lin"),
    ("u-106", "quietfox"),
]
CONTEXTS = (
    "Posted in #general",
    "Reply in “Weekend photos”",
    "Profile picture update",
    "Posted in #marketplace",
    "Direct message attachment",
    "Comment on a news story",
)


@dataclass(frozen=True)
class DemoImage:
    """One synthetic image and the context it is sent with."""

    external_id: str
    data: bytes
    uploader_id: str
    uploader_name: str
    context_text: str


def _encode(picture: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def spam_card(number: int) -> Image.Image:
    """A loud "spam" card: stripes, a starburst and big words."""
    rng = random.Random(1000 + number)
    picture = Image.new("RGB", (480, 320), (rng.randrange(150, 256), rng.randrange(80), 40))
    draw = ImageDraw.Draw(picture)
    for x in range(0, 480, 40):
        draw.rectangle((x, 0, x + 18, 320), fill=(255, 220 - number * 30, 0))
    draw.ellipse((300, 40, 460, 200), fill=(20, 20, 20))
    draw.text((40, 220), SPAM_WORDS[number % len(SPAM_WORDS)], fill="white", font_size=54)
    return picture


def near_duplicate(picture: Image.Image, variant: int) -> Image.Image:
    """The same picture with one small edit (smaller, brighter, a sticker), as reposted spam
    usually is."""
    if variant % 3 == 0:
        edited = picture.resize((picture.width * 4 // 5, picture.height * 4 // 5))
    elif variant % 3 == 1:
        edited = ImageEnhance.Brightness(picture).enhance(1.12)
    else:
        edited = picture.copy()
        ImageDraw.Draw(edited).rectangle((8, 8, 60, 40), fill=(0, 160, 255))
    return edited


def ordinary_picture(seed: int) -> Image.Image:
    """An everyday-looking synthetic picture: a sky, hills, a sun and a caption."""
    rng = random.Random(seed)
    picture = Image.new("RGB", (480, 320), (rng.randrange(90, 200), rng.randrange(140, 220), 255))
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randrange(3, 7)):
        x, height = rng.randrange(-100, 480), rng.randrange(60, 200)
        draw.ellipse(
            (x, 320 - height, x + rng.randrange(150, 400), 320 + height),
            fill=(rng.randrange(40, 120), rng.randrange(120, 200), rng.randrange(60)),
        )
    sun = rng.randrange(30, 420)
    draw.ellipse((sun, 30, sun + 50, 80), fill=(255, 230, rng.randrange(50, 150)))
    for _ in range(rng.randrange(14, 24)):  # enough detail for a PDQ hash of good quality
        x0, y0 = rng.randrange(480), rng.randrange(260)
        draw.rectangle(
            (x0, y0, x0 + rng.randrange(8, 60), y0 + rng.randrange(8, 60)),
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    draw.text((16, 284), f"Photo {seed}", fill="white", font_size=24)
    return picture


def demo_images(count: int = DEMO_COUNT) -> Iterator[DemoImage]:
    """``count`` images: every fourth a near-duplicate of a bank card, the rest ordinary."""
    rng = random.Random(7)
    for number in range(count):
        if number % 4 == 0:
            card = (number // 4) % len(SPAM_WORDS)
            picture = near_duplicate(spam_card(card), number // 4)
            uploader = UPLOADERS[3]  # one spammer, so "the uploader's other items" tells a story
        else:
            picture = ordinary_picture(number)
            uploader = UPLOADERS[rng.randrange(len(UPLOADERS))]
        yield DemoImage(
            f"demo-{number:03d}",
            _encode(picture),
            uploader[0],
            uploader[1],
            f"{CONTEXTS[number % len(CONTEXTS)]} (demo item {number + 1})",
        )


def demo_sources() -> list[Source]:
    """Sources marked as demo data."""
    return [
        source
        for source in db.session.scalars(select(Source))
        if (source.settings or {}).get("demo") is True
    ]


def demo_bank() -> Bank | None:
    """The demo bank, if there is one."""
    bank = banks.find_bank(DEMO_BANK_NAME)
    return bank if bank is not None and bank.description == DEMO_BANK_DESCRIPTION else None


def ensure_source(actor: Actor) -> tuple[Source, str]:
    """The demo source and a fresh API token for it (created on first use); commit."""
    found = demo_sources()
    if found:
        _, token = sources.issue_token(found[0], actor, "demo")
        return found[0], token
    source, token, _ = sources.create_source(
        DEMO_SOURCE_NAME, "generic", actor, settings={"demo": True}
    )
    return source, token


def ensure_bank(actor: Actor) -> Bank:
    """The demo bank, labelled spam, holding the spam cards' hashes; commit."""
    bank = demo_bank()
    if bank is None:
        bank = banks.create_bank(
            DEMO_BANK_NAME, actor, labels=["spam"], description=DEMO_BANK_DESCRIPTION
        )
        for number in range(len(SPAM_WORDS)):
            hashes = hashing.compute_hashes(_encode(spam_card(number)))
            for kind in ("sha256", "pdq"):
                value = getattr(hashes, kind)
                if value:
                    banks.add_entry(bank, kind, value, actor, note=f"demo spam card {number}")
        db.session.commit()
    return bank


def load_in_process(actor: Actor, count: int = DEMO_COUNT) -> int:
    """Create the demo source and bank and accept the images through the ingest service."""
    from app.services import ingest
    from app.services.submission import Submission

    source, _ = ensure_source(actor)
    ensure_bank(actor)
    created = 0
    for image in demo_images(count):
        submission = Submission(
            external_id=image.external_id,
            image_data=image.data,
            uploader_id=image.uploader_id,
            uploader_name=image.uploader_name,
            context_text=image.context_text,
            metadata={"demo": True},
        )
        created += ingest.accept_item(source, submission, Actor.for_source(source)).created
    return created


@jobs.handler(LOAD_JOB)
def load_job(count: int = DEMO_COUNT) -> None:
    """The job behind the queue page's demo button (admins only)."""
    load_in_process(Actor.system("demo"), count)


def api_body(image: DemoImage) -> dict[str, Any]:
    """The JSON an outside platform would send for ``image`` to ``POST /api/v1/items``."""
    import base64

    return {
        "external_id": image.external_id,
        "image": {"data": base64.b64encode(image.data).decode()},
        "uploader": {"id": image.uploader_id, "name": image.uploader_name},
        "context": {"text": image.context_text},
        "metadata": {"demo": True},
    }


@dataclass(frozen=True)
class Removed:
    """What :func:`remove_demo` deleted."""

    items: int
    media: int
    sources: int
    banks: int


def remove_demo(actor: Actor) -> Removed:
    """Delete the demo items, their media, the demo source(s) and bank; commit."""
    from app.models.source import ApiToken
    from app.services.storage import derived_store, original_store

    source_ids = [source.id for source in demo_sources()]
    hashes = set(
        db.session.scalars(
            select(Item.sha256).where(Item.source_id.in_(source_ids), Item.sha256.is_not(None))
        )
    )
    items = (
        db.session.scalar(
            select(func.count()).select_from(Item).where(Item.source_id.in_(source_ids))
        )
        or 0
    )
    db.session.execute(delete(Item).where(Item.source_id.in_(source_ids)))
    db.session.execute(delete(ApiToken).where(ApiToken.source_id.in_(source_ids)))
    db.session.execute(delete(Source).where(Source.id.in_(source_ids)))
    bank = demo_bank()
    if bank is not None:
        for entry in banks.list_entries(bank, limit=10_000).entries:
            banks.remove_entry(bank, entry.id, actor)
        db.session.delete(bank)
        banks.log_changes([{"bank_id": bank.id, "op": ChangeOp.BANK_UPDATE.value}])
    audit.record(
        "demo.removed",
        actor,
        details={"items": items, "sources": len(source_ids), "bank": bank is not None},
    )
    db.session.commit()
    # Media go after the rows: a crash in between leaves unused files, never rows without media.
    still_used = set(db.session.scalars(select(Item.sha256).where(Item.sha256.in_(hashes))))
    media = 0
    for sha256 in hashes - still_used:
        media += original_store().delete(sha256)
        derived_store().delete(sha256)
    return Removed(items, media, len(source_ids), int(bank is not None))
