"""Hash banks: create and change banks, add and remove entries, and match hashes against them.

Every write appends to the bank change log (``BankChange``) in the caller's transaction, and
that log is the only way the in-memory PDQ index learns about changes, in this process and in
every other one (``app/services/bank_matching.py``). Callers commit; imports commit per batch
(``app/services/bank_io.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, func, insert, or_, select, text, update

from app.extensions import db
from app.models.bank import DEFAULT_PDQ_THRESHOLD, Bank, BankChange, BankEntry, ChangeOp, SignalType
from app.models.types import utcnow
from app.services.audit import Actor, record
from app.services.bank_matching import BankMatch, match_hashes
from app.services.pdq_tables import MAX_THRESHOLD

__all__ = ["BankError", "BankMatch", "match_hashes"]

HEX = re.compile(r"[0-9a-f]+")
LABEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
SUGGESTED_LABELS = ("csam", "ncii", "terrorism", "violence", "spam")
NOTE_MAX = 500
PAGE_SIZE = 50
# Any constant: PostgreSQL writers of the change log serialise on this advisory lock, so change
# ids become visible in the order they were assigned and no process skips one.
CHANGE_LOG_LOCK = 0x6D6F6462


class BankError(Exception):
    """A bank or entry change that cannot be made; the message says how to fix it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def normalize_signal(signal_type: str, signal: str) -> tuple[SignalType, str]:
    """The type and lowercase hex of a hash, or BankError saying what is wrong with it."""
    kind = (signal_type or "").strip().lower()
    try:
        checked = SignalType(kind)
    except ValueError:
        raise BankError(
            f"Unknown hash type “{signal_type}”: use sha256, md5 or pdq.", "signal_type"
        ) from None
    value = (signal or "").strip().lower()
    if len(value) != checked.hex_length or not HEX.fullmatch(value):
        raise BankError(
            f"A {checked.value} hash is {checked.hex_length} hexadecimal characters "
            f"(0-9, a-f); got {len(value)} characters.",
            "signal",
        )
    return checked, value


def normalize_labels(labels: Iterable[str]) -> list[str]:
    """Lowercase, unique labels such as ``csam`` or ``ncii``; BankError for an unusable one."""
    cleaned: list[str] = []
    for label in labels:
        for part in label.split(","):
            word = part.strip().lower()
            if not word:
                continue
            if not LABEL.fullmatch(word):
                raise BankError(
                    f"Label “{word}”: use up to 40 letters, digits, '_', '-' or '.'.", "labels"
                )
            if word not in cleaned:
                cleaned.append(word)
    return cleaned


def check_name(name: str, *, exclude_id: int | None = None) -> str:
    """A bank name, trimmed, that no other bank uses (case-insensitively)."""
    name = " ".join((name or "").split())
    if not name or len(name) > 120:
        raise BankError("Give the bank a name of 1 to 120 characters.", "name")
    clash = select(Bank.id).where(func.lower(Bank.name) == name.lower())
    if exclude_id is not None:
        clash = clash.where(Bank.id != exclude_id)
    if db.session.scalar(clash) is not None:
        raise BankError(f"A bank called “{name}” already exists.", "name")
    return name


def check_threshold(value: Any) -> int:
    """A PDQ distance threshold from 0 to 31 (31 is PDQ's and HMA's default)."""
    try:
        threshold = int(value)
    except (TypeError, ValueError):
        threshold = -1
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise BankError(
            f"The PDQ threshold is a whole number from 0 to {MAX_THRESHOLD}.", "pdq_threshold"
        )
    return threshold


def log_changes(changes: Sequence[dict[str, Any]]) -> None:
    """Append rows to the change log in the current transaction (dicts of BankChange columns)."""
    if not changes:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
    insert_rows(BankChange.__table__, changes)


def insert_rows(table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows (all with the same keys) fast; ``created_at`` is set to now.

    On SQLite the rows go straight to the driver's executemany: SQLAlchemy's handling of each
    row's parameters costs more than SQLite's insert itself (three times, for 100,000 rows).
    Elsewhere Core's executemany batches rows into multi-row INSERTs, which is what is fast there.
    """
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    now = table.c.created_at.type._cached_bind_processor(dialect)  # type: ignore[attr-defined]
    stamp = now(utcnow()) if now else utcnow()
    if dialect.name != "sqlite":
        connection.execute(insert(table), [{**row, "created_at": stamp} for row in rows])
        return
    columns = [*rows[0], "created_at"]
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    keys = columns[:-1]
    connection.exec_driver_sql(statement, [(*(row[k] for k in keys), stamp) for row in rows])


def create_bank(
    name: str,
    actor: Actor,
    *,
    labels: Iterable[str] = (),
    negative: bool = False,
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
    description: str = "",
    enabled: bool = True,
) -> Bank:
    """Create a bank; the caller commits."""
    bank = Bank(
        name=check_name(name),
        labels=normalize_labels(labels),
        negative=bool(negative),
        pdq_threshold=check_threshold(pdq_threshold),
        description=description.strip(),
        enabled=bool(enabled),
    )
    db.session.add(bank)
    db.session.flush()
    log_changes([{"bank_id": bank.id, "op": ChangeOp.BANK_UPDATE.value}])
    record("bank.created", actor, target_type="bank", target_id=bank.id, details=_settings(bank))
    return bank


def update_bank(bank: Bank, actor: Actor, **changes: Any) -> Bank:
    """Change name, labels, description, pdq_threshold, negative or enabled; the caller commits."""
    checkers = {
        "name": lambda value: check_name(value, exclude_id=bank.id),
        "labels": normalize_labels,
        "description": lambda value: (value or "").strip(),
        "pdq_threshold": check_threshold,
        "negative": bool,
        "enabled": bool,
    }
    before = _settings(bank)
    for field, value in changes.items():
        if field not in checkers:
            raise ValueError(f"not a bank setting: {field}")
        setattr(bank, field, checkers[field](value))
    after = _settings(bank)
    changed = {key: after[key] for key in after if after[key] != before[key]}
    if changed:
        log_changes([{"bank_id": bank.id, "op": ChangeOp.BANK_UPDATE.value}])
        record(
            "bank.updated",
            actor,
            target_type="bank",
            target_id=bank.id,
            details={"changed": changed},
        )
    return bank


def find_bank(name_or_id: str | int) -> Bank | None:
    """The bank with this id or (case-insensitive) name."""
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        bank = db.session.get(Bank, int(name_or_id))
        if bank is not None:
            return bank
    return db.session.scalar(select(Bank).where(func.lower(Bank.name) == str(name_or_id).lower()))


def list_banks() -> list[Bank]:
    """Every bank, by name."""
    return list(db.session.scalars(select(Bank).order_by(func.lower(Bank.name))))


def add_entry(
    bank: Bank,
    signal_type: str,
    signal: str,
    actor: Actor,
    *,
    note: str = "",
    source_ref: str | None = None,
) -> BankEntry:
    """Add one hash to a bank; BankError if invalid or already there. The caller commits."""
    kind, value = normalize_signal(signal_type, signal)
    existing = db.session.scalar(
        select(BankEntry.id).where(
            BankEntry.bank_id == bank.id,
            BankEntry.signal_type == kind.value,
            BankEntry.signal == value,
        )
    )
    if existing is not None:
        raise BankError(
            f"This {kind.value} hash is already in {bank.name} (entry {existing}).", "signal"
        )
    entry = BankEntry(
        bank_id=bank.id,
        signal_type=kind.value,
        signal=value,
        note=(note or "").strip()[:NOTE_MAX] or None,
        source_ref=source_ref,
        created_by=actor.label,
    )
    db.session.add(entry)
    db.session.flush()
    adjust_counts(bank.id, {kind.value: 1})
    log_changes(
        [
            {
                "bank_id": bank.id,
                "entry_id": entry.id,
                "signal_type": kind.value,
                "signal": value,
                "op": ChangeOp.ADD.value,
            }
        ]
    )
    record(
        "bank.entry_added",
        actor,
        target_type="bank",
        target_id=bank.id,
        details={"entry_id": entry.id, "signal_type": kind.value},
    )
    return entry


def remove_entry(bank: Bank, entry_id: int, actor: Actor) -> BankEntry | None:
    """Delete one entry of this bank (None if it is not there); the caller commits."""
    entry = db.session.scalar(
        select(BankEntry).where(BankEntry.id == entry_id, BankEntry.bank_id == bank.id)
    )
    if entry is None:
        return None
    db.session.delete(entry)
    adjust_counts(bank.id, {entry.signal_type: -1})
    log_changes(
        [
            {
                "bank_id": bank.id,
                "entry_id": entry.id,
                "signal_type": entry.signal_type,
                "signal": entry.signal,
                "op": ChangeOp.REMOVE.value,
            }
        ]
    )
    record(
        "bank.entry_removed",
        actor,
        target_type="bank",
        target_id=bank.id,
        details={"entry_id": entry.id, "signal_type": entry.signal_type},
    )
    return entry


def adjust_counts(bank_id: int, deltas: dict[str, int]) -> None:
    """Add ``deltas`` (signal type -> change) to the bank's stored entry counts, in SQL."""
    columns = {
        f"{kind}_count": getattr(Bank, f"{kind}_count") + delta
        for kind, delta in deltas.items()
        if delta
    }
    if columns:
        db.session.execute(update(Bank).where(Bank.id == bank_id).values(**columns))


def record_export(bank: Bank, fmt: str, actor: Actor) -> None:
    """Audit that someone took a copy of a bank's hashes (how many, not which)."""
    record(
        "bank.exported",
        actor,
        target_type="bank",
        target_id=bank.id,
        details={"format": fmt, "entries": bank.entry_count},
    )


@dataclass(frozen=True)
class EntryPage:
    """A page of a bank's entries, newest first, with the cursor of the next (older) page."""

    entries: list[BankEntry]
    older_than: int | None


def list_entries(
    bank: Bank, *, search: str = "", before: int | None = None, limit: int = PAGE_SIZE
) -> EntryPage:
    """Entries newest first; ``search`` is a hash prefix (hex) or words in the note.

    A hex term of 8 or more characters is taken as a hash prefix and found through the unique
    index, in any size of bank. Shorter terms may be words ("cafe") and also search the notes,
    which reads the bank's entries until a page is full.
    """
    query = select(BankEntry).where(BankEntry.bank_id == bank.id)
    order = BankEntry.id.desc()
    term = search.strip().lower()
    if term:
        # "g" sorts after every hex digit: [term, term + "g") holds exactly the hashes it starts.
        prefix = and_(
            BankEntry.signal_type.in_([kind.value for kind in SignalType]),
            BankEntry.signal >= term,
            BankEntry.signal < term + "g",
        )
        if HEX.fullmatch(term) and len(term) >= 8:
            query = query.where(prefix)
            # Sorting by id + 0 stops SQLite from walking (bank_id, id) over the whole bank
            # to save sorting the few rows the prefix range finds.
            order = (BankEntry.id + 0).desc()
        elif HEX.fullmatch(term):
            query = query.where(or_(prefix, BankEntry.note.icontains(term, autoescape=True)))
        else:
            query = query.where(BankEntry.note.icontains(term, autoescape=True))
    if before is not None:
        query = query.where(BankEntry.id < before)
    rows = list(db.session.scalars(query.order_by(order).limit(limit + 1)))
    older = rows[limit - 1].id if len(rows) > limit else None
    return EntryPage(rows[:limit], older)


def _settings(bank: Bank) -> dict[str, Any]:
    return {
        "name": bank.name,
        "labels": list(bank.labels or []),
        "enabled": bank.enabled,
        "negative": bank.negative,
        "pdq_threshold": bank.pdq_threshold,
        "description": bank.description,
    }
