"""Safe viewing: revealing an item's original, on purpose, on the record, for one minute.

By default a moderator sees only the derived preview: greyscale and blurred past recognition on
the server. To see more they reveal the item in a mode (``RevealMode``): the reveal is recorded
(a ``Reveal`` row, an ``item.revealed`` audit event, one more on today's exposure count) and
answered with a signed token, bound to the user, the item and the mode, that the media route
accepts for ``REVEAL_TOKEN_SECONDS`` (default 60). Greyscale and partial modes are rendered here
from the original; only ``full`` sends the original's bytes.

Items matched to a bank whose labels include one of ``REVEAL_LEAD_ONLY_LABELS`` (default
``csam``) are never revealed to moderators; a lead or admin may reveal them with a typed reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from PIL import Image, ImageFilter, ImageOps
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.models.item import Item
from app.models.review import ExposureDay, Reveal, RevealMode, UserPreference
from app.models.scan import ScanResult, Verdict
from app.models.types import utcnow
from app.models.user import Role, User
from app.services import audit
from app.services.audit import Actor

TOKEN_SALT = "modtools.reveal"
MIN_REASON_LENGTH = 10
RENDER_MAX_SIDE = 1600  # greyscale and partial renders: enough to judge, no more


class RevealRefused(Exception):
    """A reveal the user may not make, with ``message`` in words and the HTTP ``status``."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Sensitivity:
    """Whether only leads may reveal an item, and the banks that make it so."""

    lead_only: bool
    banks: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """A recorded reveal: the token for the image route, and today's exposure after it."""

    token: str
    mode: RevealMode
    exposure_today: int
    remind: bool


def lead_only_labels() -> frozenset[str]:
    """Bank labels whose matches only leads may reveal."""
    return frozenset(
        label.lower() for label in current_app.config.get("REVEAL_LEAD_ONLY_LABELS", ("csam",))
    )


def sensitivity(item_id: str) -> Sensitivity:
    """Whether ``item_id`` matched a bank labelled lead-only (in any scan round, any scanner)."""
    wanted = lead_only_labels()
    banks: set[str] = set()
    labels: set[str] = set()
    for matches in db.session.scalars(
        select(ScanResult.matches).where(
            ScanResult.item_id == item_id, ScanResult.verdict == Verdict.MATCH
        )
    ):
        for match in matches or []:
            found = {str(label).lower() for label in match.get("labels") or []} & wanted
            if found:
                labels |= found
                banks.add(str(match.get("bank_name") or f"bank {match.get('bank_id')}"))
    return Sensitivity(bool(labels), tuple(sorted(banks)), tuple(sorted(labels)))


def reveal(item: Item, user: User, mode: str, actor: Actor, reason: str | None = None) -> Grant:
    """Record that ``user`` reveals ``item`` in ``mode`` and return a token; commit.

    Raises RevealRefused when the mode is unknown, the item has no image, or the item is
    lead-only and the user is not a lead (or gave no reason).
    """
    try:
        chosen = RevealMode(mode)
    except ValueError:
        raise RevealRefused("Choose how to reveal: greyscale, partial or full.", 400) from None
    if item.sha256 is None:
        raise RevealRefused("This item has no image yet, so there is nothing to reveal.", 409)
    reason = (reason or "").strip()[:2000] or None
    marked = sensitivity(item.id)
    if marked.lead_only:
        if not user.has_role(Role.LEAD):
            raise RevealRefused(
                f"This image matched a bank labelled {', '.join(marked.labels)}. Only a lead or "
                "an admin can reveal it; escalate it if it needs a closer look."
            )
        if reason is None or len(reason) < MIN_REASON_LENGTH:
            raise RevealRefused(
                "Type why you need to see this image (at least "
                f"{MIN_REASON_LENGTH} characters); the reason is kept in the audit log.",
                400,
            )
    db.session.add(
        Reveal(
            item_id=item.id,
            user_id=user.id,
            mode=chosen.value,
            reason=reason,
            sensitive=marked.lead_only,
        )
    )
    audit.record(
        "item.revealed",
        actor,
        target_type="item",
        target_id=item.id,
        details={"mode": chosen.value, "reason": reason, "lead_only": marked.lead_only},
    )
    today = count_exposure(user.id, utcnow().date())
    db.session.commit()
    reminder = reminder_at()
    return Grant(make_token(user.id, item.id, chosen), chosen, today, 0 < reminder <= today)


def reminder_at() -> int:
    """Reveals in a day after which the break reminder shows."""
    return int(current_app.config.get("EXPOSURE_REMINDER_AT", 50))


def count_exposure(user_id: int, day: date) -> int:
    """Add one reveal to ``user_id``'s count for ``day`` and return the new count."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(ExposureDay).values(user_id=user_id, day=day, reveals=1)
    statement = statement.on_conflict_do_update(
        index_elements=[ExposureDay.user_id, ExposureDay.day],
        set_={"reveals": ExposureDay.reveals + 1},
    ).returning(ExposureDay.reveals)
    return int(db.session.execute(statement).scalar_one())


def exposure_today(user_id: int, now: datetime | None = None) -> int:
    """How many originals ``user_id`` revealed today (UTC)."""
    row = db.session.get(ExposureDay, (user_id, (now or utcnow()).date()))
    return row.reveals if row else 0


# --- tokens -----------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=TOKEN_SALT)  # type: ignore[arg-type]


def make_token(user_id: int, item_id: str, mode: RevealMode) -> str:
    """A signed, timestamped token for one user, one item, one mode."""
    return _serializer().dumps({"u": user_id, "i": item_id, "m": mode.value})


def check_token(token: str | None, user_id: int, item_id: str) -> RevealMode | None:
    """The mode ``token`` grants ``user_id`` for ``item_id``, or None (forged, expired, other
    user or item)."""
    if not token:
        return None
    try:
        payload: Any = _serializer().loads(
            token, max_age=int(current_app.config.get("REVEAL_TOKEN_SECONDS", 60))
        )
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(payload, dict) or payload.get("u") != user_id or payload.get("i") != item_id:
        return None
    try:
        return RevealMode(payload.get("m"))
    except ValueError:
        return None


# --- preferences and rendering ----------------------------------------------------------------


def preferences(user_id: int) -> UserPreference:
    """The user's viewing preferences (an unsaved row with the defaults if they set none)."""
    saved = db.session.get(UserPreference, user_id)
    return saved or UserPreference(
        user_id=user_id, blur_strength=6, greyscale=True, auto_reveal_unflagged=False
    )


def save_preferences(
    user_id: int, blur_strength: int, greyscale: bool, auto_reveal_unflagged: bool
) -> UserPreference:
    """Store the user's viewing preferences; commit."""
    saved = db.session.get(UserPreference, user_id) or UserPreference(user_id=user_id)
    saved.blur_strength = min(10, max(1, int(blur_strength)))
    saved.greyscale, saved.auto_reveal_unflagged = bool(greyscale), bool(auto_reveal_unflagged)
    db.session.add(saved)
    db.session.commit()
    return saved


def default_mode(prefs: UserPreference) -> RevealMode:
    """What the reveal key shows: the original in greyscale, or in colour."""
    return RevealMode.GREYSCALE if prefs.greyscale else RevealMode.FULL


def render(original: bytes, mode: RevealMode, prefs: UserPreference) -> bytes:
    """A greyscale or partly blurred WebP of the original, made here so the raw bytes stay put."""
    # The original passed ingest's type, size and bomb checks before it was stored.
    with Image.open(io.BytesIO(original)) as opened:
        opened.draft("RGB", (RENDER_MAX_SIDE, RENDER_MAX_SIDE))  # JPEG: decode only what we need
        picture = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
    picture.thumbnail((RENDER_MAX_SIDE, RENDER_MAX_SIDE))
    if mode is RevealMode.PARTIAL:
        # Strength 1 barely softens, 10 leaves shapes and colours only; the preview is further.
        radius = max(picture.size) * prefs.blur_strength / 250
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    if mode is RevealMode.GREYSCALE or prefs.greyscale:
        picture = picture.convert("L")
    bare = Image.frombytes(picture.mode, picture.size, picture.tobytes())  # no metadata carried
    buffer = io.BytesIO()
    bare.save(buffer, "WEBP", quality=85)
    return buffer.getvalue()
