"""Matching an image's hashes against the banks, with one PDQ index per process kept current.

Each process (web server, worker) holds one :class:`BankMatcher` on its app, in
``app.extensions["modtools_banks"]``. A Huey consumer builds the PDQ index from the database in
a background thread as it starts (:func:`build_in_background`), and so does a web-only server
(``EMBEDDED_WORKER=false``), so with ``python wsgi.py`` in either mode and with ``flask worker``
no lookup waits seconds for it after a restart; elsewhere (tests, the CLI) the first lookup
builds it. Before every lookup the matcher reads
``SELECT max(id) FROM bank_changes`` (one index seek, through the driver: about 10 µs) and applies
only the newer changes. So an entry added in the web process is matched by a worker's next
lookup, and the other way round, with no restart and no full rebuild. The log is pruned daily
(:func:`prune_changes`); a process that was idle past the pruned rows rebuilds instead.

SHA-256 and MD5 are matched exactly by an indexed database query (``ix_bank_entries_lookup``):
about 0.16 ms, against a dict's microsecond, but no memory per hash; a dict of two million hex
strings would cost about 350 MiB in every process (bench/results.md).

Negative banks hold known false positives. If the item matches an entry of any enabled negative
bank (an exact SHA-256/MD5 hash, or a PDQ hash within that bank's threshold), no match is
reported at all, from any bank: the item is treated as known benign. This is the "global
ignore" form of HMA issue #1977; keep a negative bank's PDQ threshold tight (e.g. 10) so that a
false positive does not also hide real matches of other pictures close to it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

import numpy as np
from flask import Flask, current_app
from sqlalchemy import Row, Select, and_, bindparam, delete, func, or_, select

from app.extensions import db, huey
from app.models.bank import Bank, BankChange, BankEntry, ChangeOp, SignalType
from app.models.types import utcnow
from app.services.pdq_index import PdqIndex
from app.services.pdq_tables import hashes_from_hex

log = logging.getLogger(__name__)

EXTENSION_KEY = "modtools_banks"
CHANGE_BATCH = 20_000
LOAD_BATCH = 50_000
MIN_PDQ_QUALITY = 50  # threatexchange's PdqSignal.QUALITY_THRESHOLD, as HMA
# A process that looked nothing up for this long rebuilds its index (seconds per million PDQ
# hashes) instead of replaying the log; the daily housekeeping job prunes older rows.
CHANGES_KEPT = timedelta(days=1)
PRUNE_BATCH = 20_000


@dataclass(frozen=True)
class BankMatch:
    """One entry an item matched: which bank, its labels, and how close."""

    bank_id: int
    bank_name: str
    labels: tuple[str, ...]
    signal_type: str
    signal: str
    distance: int
    entry_id: int
    note: str | None


@dataclass(frozen=True)
class BankSettings:
    """What matching needs to know about a bank, cached per process."""

    id: int
    name: str
    labels: tuple[str, ...]
    enabled: bool
    negative: bool
    pdq_threshold: int


class BankMatcher:
    """One process's view of the banks: the PDQ index, bank settings and the change cursor."""

    def __init__(self, *, merge_at: int | None = None, background_merge: bool = True):
        self.index: PdqIndex | None = None
        self.banks: dict[int, BankSettings] = {}
        self.cursor = 0  # the last change applied
        self._options = {
            "background_merge": background_merge,
            **({"merge_at": merge_at} if merge_at else {}),
        }
        self._lock = threading.Lock()  # one thread applies changes; the others wait, then read

    def sync(self) -> PdqIndex:
        """Apply every change newer than the cursor (or build everything on first use)."""
        latest = _latest_change()
        index = self.index
        if index is not None and latest <= self.cursor:
            return index
        with self._lock:
            if self.index is None or self._missed_changes(self.cursor):
                self._load(latest)
            elif latest > self.cursor:
                applied_from = self.cursor
                self._apply(latest)
                if self._missed_changes(applied_from):  # pruned while we read: start afresh
                    self._load(latest)
            assert self.index is not None
            return self.index

    def _missed_changes(self, cursor: int) -> bool:
        # Pruning deletes a prefix of the log and keeps its newest row, so rows after the
        # cursor are all there exactly when the oldest row left is at most cursor + 1.
        oldest = db.session.scalar(select(func.min(BankChange.id)))
        return oldest is not None and oldest > cursor + 1

    def _load(self, latest: int) -> None:
        # Cursor first, entries second: an entry added in between is loaded *and* re-applied
        # from the log, which is harmless (queries report an entry once, removal drops copies).
        ids: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        # The driver's own cursor: SQLAlchemy's rows cost more than the read itself, and
        # arrays batch by batch because a million hex strings at once would cost ~150 MB.
        cursor = db.session.connection().connection.cursor()
        try:
            cursor.execute("SELECT id, signal FROM bank_entries WHERE signal_type = 'pdq'")
            while batch := cursor.fetchmany(LOAD_BATCH):
                # Not zip(*batch): unpacking 50,000 rows as arguments costs more than the rest.
                ids.append(np.fromiter((row[0] for row in batch), np.int64, len(batch)))
                hashes.append(hashes_from_hex([row[1] for row in batch]))
        finally:
            cursor.close()
        self.banks = _load_banks()
        self.index = PdqIndex.build(
            np.concatenate([np.empty(0, np.int64), *ids]),
            np.concatenate([np.empty((0, 4), np.uint64), *hashes]),
            **self._options,
        )
        self.cursor = latest

    def _apply(self, latest: int) -> None:
        assert self.index is not None
        banks_changed = False
        while self.cursor < latest:
            changes = (
                db.session.connection()
                .execute(
                    select(
                        BankChange.id,
                        BankChange.op,
                        BankChange.entry_id,
                        BankChange.signal_type,
                        BankChange.signal,
                    )
                    .where(BankChange.id > self.cursor, BankChange.id <= latest)
                    .order_by(BankChange.id)
                    .limit(CHANGE_BATCH)
                )
                .all()
            )
            if not changes:
                break
            # Runs of the same operation go to the index together; order between runs is kept.
            for op, run in groupby(changes, key=lambda change: change.op):
                batch = list(run)
                pdq = [c for c in batch if c.signal_type == SignalType.PDQ.value]
                if op == ChangeOp.ADD.value and pdq:
                    self.index.add_many([c.entry_id for c in pdq], [c.signal for c in pdq])
                elif op == ChangeOp.REMOVE.value and pdq:
                    self.index.remove_many(c.entry_id for c in pdq)
                elif op == ChangeOp.BANK_UPDATE.value:
                    banks_changed = True
            self.cursor = changes[-1].id
        self.cursor = latest
        if banks_changed:
            self.banks = _load_banks()


def prune_changes(now: datetime | None = None, keep: timedelta = CHANGES_KEPT) -> int:
    """Delete change-log rows older than ``keep``; returns how many went (committed in batches).

    Always a prefix of ids, oldest first, and never the newest row (``max(id)`` is every
    process's measure of "anything new?"). A process whose cursor is inside the deleted prefix
    sees that the oldest row left is past its cursor and rebuilds its index from the entries
    instead of applying changes (:meth:`BankMatcher.sync`), so pruning never hides a change.
    """
    now = now or utcnow()
    newest = db.session.scalar(select(func.max(BankChange.id)))
    if newest is None:
        return 0
    # In id order the scan stops at the first recent row: it reads only what is to go.
    first_recent = db.session.scalar(
        select(BankChange.id)
        .where(BankChange.created_at >= now - keep)
        .order_by(BankChange.id)
        .limit(1)
    )
    boundary = min(first_recent or newest, newest)
    removed = 0
    while True:
        oldest = db.session.scalar(select(func.min(BankChange.id))) or boundary
        upto = min(boundary, oldest + PRUNE_BATCH)
        if oldest >= upto:
            return removed
        removed += db.session.execute(delete(BankChange).where(BankChange.id < upto)).rowcount or 0
        db.session.commit()


def _latest_change() -> int:
    """``max(id)`` of the change log. Every lookup asks, so it goes through the driver's cursor:
    about 10 µs, where building and running the statement through SQLAlchemy costs ten times that.
    It runs on the session's connection, so it sees what the session's other queries see."""
    cursor = db.session.connection().connection.cursor()
    try:
        cursor.execute("SELECT max(id) FROM bank_changes")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return int(row[0] or 0) if row else 0


def _load_banks() -> dict[int, BankSettings]:
    return {
        bank.id: BankSettings(
            bank.id,
            bank.name,
            tuple(bank.labels or ()),
            bank.enabled,
            bank.negative,
            bank.pdq_threshold,
        )
        for bank in db.session.scalars(select(Bank))
    }


def matcher(app: Flask | None = None) -> BankMatcher:
    """This process's matcher for ``app`` (the current app by default), created on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _create_lock:
        found = app.extensions.get(EXTENSION_KEY)
        if found is None:
            found = app.extensions[EXTENSION_KEY] = BankMatcher()
    return found


_create_lock = threading.Lock()
WARM_UP_KEY = "modtools_banks_warm_up"


def build_in_background(app: Flask) -> threading.Thread | None:
    """Build ``app``'s PDQ index now, in a background thread: a million hashes take over a second.

    Once per app; returns the thread, or None when one was already started. Lookups that come
    while it runs wait for it (the matcher's lock) rather than building a second index. If it
    fails (say the database is not migrated yet) it says so and the first lookup builds instead.
    """
    with _create_lock:
        if app.extensions.get(WARM_UP_KEY) is not None:
            return None
        thread = app.extensions[WARM_UP_KEY] = threading.Thread(
            target=_build, args=(app,), name="pdq-index-build", daemon=True
        )
    thread.start()
    return thread


def _build(app: Flask) -> None:
    try:
        with app.app_context():
            began = time.perf_counter()
            size = len(matcher(app).sync())
            log.info("PDQ index built: %d hashes in %.1f s", size, time.perf_counter() - began)
    except Exception as error:  # the first lookup retries, and reports what it meets
        log.warning("could not build the PDQ index at start-up (%s); the first lookup will", error)


@huey.on_startup("build_pdq_index")
def _build_when_a_consumer_starts() -> None:
    # Each worker thread of a starting consumer calls this: python wsgi.py (web and worker in
    # one process, one matcher for both) and flask worker. Tests run Huey inline: no consumer.
    app = getattr(huey, "flask_app", None)
    if app is not None:
        build_in_background(app)


def match_hashes(
    *,
    sha256: str | None,
    md5: str | None,
    pdq: str | None,
    pdq_quality: int | None,
    min_pdq_quality: int = MIN_PDQ_QUALITY,
) -> list[BankMatch]:
    """Every entry of an enabled bank the hashes match, closest first; [] if a negative bank
    matches. A PDQ hash is not matched when its quality is below ``min_pdq_quality``; a quality
    of None means unknown and the caller vouches for the hash."""
    state = matcher()
    index = state.sync()
    banks = state.banks
    enabled = [bank for bank in banks.values() if bank.enabled]
    if not enabled:
        return []
    found: list[tuple[Row[Any], int]] = []
    # Prepared statements on the Core connection: SQLAlchemy builds and keys them once, not per
    # lookup (bench/results.md, the check section). A hash not given binds NULL, which no row has.
    connection = db.session.connection()
    if sha256 or md5:
        exact = {"sha256": sha256 and sha256.lower(), "md5": md5 and md5.lower()}
        found += [(row, 0) for row in connection.execute(_EXACT_MATCHES, exact)]
    if pdq and (pdq_quality is None or pdq_quality >= min_pdq_quality):
        threshold = max(bank.pdq_threshold for bank in enabled)
        near = dict(index.query(pdq.lower(), threshold))
        for start in range(0, len(near), 500):
            ids = list(near)[start : start + 500]
            rows = connection.execute(_ENTRIES_BY_ID, {"ids": ids})
            found += [(row, near[row.id]) for row in rows]
    matches: list[BankMatch] = []
    for row, distance in found:
        bank = banks.get(row.bank_id)
        if bank is None or not bank.enabled:
            continue
        if row.signal_type == SignalType.PDQ.value and distance > bank.pdq_threshold:
            continue
        if bank.negative:
            return []  # a known false positive: the item is benign, nothing matched
        matches.append(
            BankMatch(
                bank.id,
                bank.name,
                bank.labels,
                row.signal_type,
                row.signal,
                distance,
                row.id,
                row.note,
            )
        )
    return sorted(matches, key=lambda match: (match.distance, match.bank_name, match.entry_id))


def _entry_columns() -> Select[Any]:
    return select(
        BankEntry.id, BankEntry.bank_id, BankEntry.signal_type, BankEntry.signal, BankEntry.note
    )


_EXACT_MATCHES = _entry_columns().where(
    or_(
        and_(BankEntry.signal_type == "sha256", BankEntry.signal == bindparam("sha256")),
        and_(BankEntry.signal_type == "md5", BankEntry.signal == bindparam("md5")),
    )
)
_ENTRIES_BY_ID = _entry_columns().where(BankEntry.id.in_(bindparam("ids", expanding=True)))
