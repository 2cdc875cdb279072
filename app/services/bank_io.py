"""Import bank entries from CSV, threatexchange hash files and HMA bank content.

Formats (docs/banks.md has examples):

- ``csv``: ``signal_type,signal[,note]``, with or without that header line.
- ``te``: python-threatexchange's file format (its ``local_file`` exchange, which HMA can
  fetch): one ``<signal type> <hash>`` per line, e.g. ``pdq 9f8e…``. Its names are used:
  ``pdq``; and ``md5``/``sha256`` for the file hashes of images, which threatexchange has no
  image type for. ``video_md5``/``video_sha256`` and other types are refused with their line.
- ``hma``: HMA bank content as ``GET /c/bank/<bank>/content/<id>?include_signals=true`` returns
  it, one JSON object per line (or one JSON array of them): ``signals`` maps type to hash;
  ``note``, ``id`` and ``bank.name`` are kept; content HMA has disabled (``disable_until_ts``
  other than 1) is skipped. Objects shaped like HMA's ``POST /c/bank/<bank>/signal`` body,
  ``{"pdq": "…", "note": "…"}``, are read too. HMA itself has no bulk export.

Imports are checked line by line and stream: batches of 20,000 lines are de-duplicated against
the bank, inserted and committed, so a large file neither holds the write lock for long nor fills
memory. The report counts what was added, what was already there and what was wrong, where.
Export, in the same formats, is in ``app/services/bank_export.py``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain, islice
from typing import IO, Any

from sqlalchemy import func, select

from app.extensions import db
from app.models.bank import Bank, BankEntry, ChangeOp
from app.services.audit import Actor, record
from app.services.banks import (
    NOTE_MAX,
    BankError,
    adjust_counts,
    insert_rows,
    log_changes,
    normalize_signal,
)

BATCH = 20_000  # rows per transaction: fewer commits (and WAL checkpoints) are faster
MAX_ERRORS_KEPT = 100
VIDEO_TYPES = {"video_md5", "video_sha256", "vpdq", "tmk_pdqf"}
# A spreadsheet runs a cell starting with one of these as a formula: exported notes are defused
# with a leading apostrophe, which import takes off again.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Format(StrEnum):
    """The file formats banks import and export."""

    CSV = "csv"
    TE = "te"
    HMA = "hma"

    @property
    def extension(self) -> str:
        """The file name extension an export gets."""
        return {"csv": "csv", "te": "txt", "hma": "jsonl"}[self.value]


@dataclass
class ImportReport:
    """What an import did: counts, and the first errors with their line (or item) numbers."""

    format: str
    unit: str = "line"  # "item" for a JSON array
    lines: int = 0
    added: int = 0
    duplicates: int = 0
    skipped: int = 0
    error_count: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def error(self, where: int, message: str) -> None:
        """Count an error; keep its text if it is among the first hundred."""
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((where, message))

    def summary(self) -> dict[str, Any]:
        """The counts, for the audit log and JSON output (no hashes)."""
        return {
            "format": self.format,
            "lines": self.lines,
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "errors": self.error_count,
        }


@dataclass(frozen=True)
class ParsedEntry:
    """One valid hash read from a file."""

    where: int
    signal_type: str
    signal: str
    note: str | None
    source_ref: str | None


def text_lines(stream: IO[bytes] | IO[str]) -> Iterator[str]:
    """Lines of an uploaded file as text: UTF-8 (a BOM is dropped), undecodable bytes replaced,
    any newline convention. The stream is left open."""
    if isinstance(stream.read(0), str):
        yield from stream  # type: ignore[misc]
        return
    wrapper = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")  # type: ignore[type-var]
    try:
        yield from wrapper
    finally:
        wrapper.detach()  # closing the wrapper would close the caller's stream


def detect_format(first_line: str) -> Format:
    """Guess the format from the first non-blank line."""
    line = first_line.lstrip("\ufeff").strip()
    if line.startswith(("{", "[")):
        return Format.HMA
    if "," in line or line.lower().startswith("signal_type"):
        return Format.CSV
    return Format.TE


def import_entries(
    bank: Bank,
    stream: IO[bytes] | IO[str],
    actor: Actor,
    *,
    fmt: str | None = None,
    filename: str = "",
) -> ImportReport:
    """Read a file into ``bank``, committing every batch; audited with counts, never hashes."""
    lines = text_lines(stream)
    first = ""
    peeked: list[str] = []
    for line in lines:
        peeked.append(line)
        if line.strip():
            first = line
            break
    chosen = Format(fmt) if fmt else detect_format(first)
    report = ImportReport(chosen.value)
    everything = chain(peeked, lines)
    parse = {Format.CSV: parse_csv, Format.TE: parse_te, Format.HMA: parse_hma}[chosen]
    name = filename.rsplit("/", 1)[-1][:200]
    for batch in _batches(parse(everything, report, name), BATCH):
        _insert(bank, batch, report, actor.label)
        db.session.commit()
    record(
        "bank.imported",
        actor,
        target_type="bank",
        target_id=bank.id,
        details={**report.summary(), "file": name},
    )
    db.session.commit()
    return report


def _batches(entries: Iterator[ParsedEntry], size: int) -> Iterator[tuple[ParsedEntry, ...]]:
    # itertools.batched arrives in Python 3.12; we support 3.11.
    while batch := tuple(islice(entries, size)):
        yield batch


def _entry(
    report: ImportReport, where: int, kind: str, signal: str, note: str | None, ref: str | None
) -> ParsedEntry | None:
    lowered = (kind or "").strip().lower()
    if lowered in VIDEO_TYPES:
        report.error(where, f"“{lowered}” is a video hash; banks match images (sha256, md5, pdq).")
        return None
    try:
        signal_type, value = normalize_signal(lowered, signal)
    except BankError as error:
        report.error(where, error.message)
        return None
    if note and note[:1] == "'" and note[1:2] in FORMULA_PREFIXES:
        note = note[1:]
    return ParsedEntry(
        where, signal_type.value, value, (note or "").strip()[:NOTE_MAX] or None, ref
    )


def parse_csv(lines: Iterable[str], report: ImportReport, filename: str) -> Iterator[ParsedEntry]:
    """``signal_type,signal[,note]`` rows; a header row, if any, names the columns."""
    reader = csv.reader(lines)
    columns = {"signal_type": 0, "signal": 1, "note": 2}
    first = True
    for row in reader:
        report.lines = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if first:
            first = False
            header = [cell.strip().lower() for cell in row]
            if "signal_type" in header and "signal" in header:
                columns = {
                    name: header.index(name)
                    for name in ("signal_type", "signal", "note")
                    if name in header
                }
                continue
        cells = {name: row[index] if index < len(row) else "" for name, index in columns.items()}
        if not cells["signal"].strip():
            report.error(reader.line_num, "Expected signal_type,signal[,note].")
            continue
        entry = _entry(
            report,
            reader.line_num,
            cells["signal_type"],
            cells["signal"],
            cells.get("note"),
            f"{filename}:{reader.line_num}" if filename else None,
        )
        if entry:
            yield entry


def parse_te(lines: Iterable[str], report: ImportReport, filename: str) -> Iterator[ParsedEntry]:
    """``<signal type> <hash>`` per line, as threatexchange writes and reads them."""
    for number, line in enumerate(lines, start=1):
        report.lines = number
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            report.error(number, "Expected “<type> <hash>”, e.g. “pdq <64 hex characters>”.")
            continue
        entry = _entry(
            report, number, words[0], words[1], None, f"{filename}:{number}" if filename else None
        )
        if entry:
            yield entry


def parse_hma(lines: Iterable[str], report: ImportReport, filename: str) -> Iterator[ParsedEntry]:
    """HMA bank content objects, one per line, or a JSON array of them."""
    numbered: Iterable[tuple[int, Any]]
    iterator = enumerate(lines, start=1)
    start, first = next(((number, line) for number, line in iterator if line.strip()), (1, ""))
    if first.lstrip().startswith("["):
        report.unit = "item"
        try:
            document = json.loads(first + "".join(line for _, line in iterator))
        except ValueError as error:
            report.error(1, f"Not valid JSON: {error}.")
            return
        numbered = enumerate(document if isinstance(document, list) else [document], start=1)
    else:
        numbered = _json_lines(chain([(start, first)], iterator), report)
    now = time.time()
    for where, content in numbered:
        report.lines = max(report.lines, where)
        if not isinstance(content, dict):
            report.error(where, "Expected a JSON object with “signals”.")
            continue
        signals = content.get("signals")
        if not isinstance(signals, dict):  # HMA's POST /c/bank/<bank>/signal body
            signals = {
                key: value
                for key, value in content.items()
                if key in {"pdq", "md5", "sha256"} | VIDEO_TYPES
            }
        if not signals:
            report.error(where, "No signals in this object.")
            continue
        disabled = content.get("disable_until_ts", 1)
        if isinstance(disabled, int) and disabled != 1 and (disabled == 0 or disabled > now):
            report.skipped += 1  # HMA does not match it now, so neither do we
            continue
        bank = content.get("bank")
        bank_name = bank.get("name") if isinstance(bank, dict) else None
        ref = "hma:" + "/".join(str(part) for part in (bank_name, content.get("id")) if part)
        note = content.get("note") if isinstance(content.get("note"), str) else None
        for kind, value in signals.items():
            entry = _entry(
                report, where, str(kind), str(value), note, ref if ref != "hma:" else None
            )
            if entry:
                yield entry


def _json_lines(
    lines: Iterable[tuple[int, str]], report: ImportReport
) -> Iterator[tuple[int, Any]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:
            report.lines = number
            report.error(number, "Not a JSON object (HMA format expects one per line).")


def _insert(
    bank: Bank, batch: tuple[ParsedEntry, ...], report: ImportReport, created_by: str
) -> None:
    unique: dict[tuple[str, str], ParsedEntry] = {}
    for entry in batch:
        unique.setdefault((entry.signal_type, entry.signal), entry)
    existing = _ids_of(bank, unique)
    new = [entry for key, entry in unique.items() if key not in existing]
    report.duplicates += len(batch) - len(new)
    if not new:
        return
    before = db.session.scalar(select(func.max(BankEntry.id))) or 0
    # Not the ORM's INSERT … RETURNING: on SQLite it goes row by row, 10x slower.
    insert_rows(
        BankEntry.__table__,
        [
            {
                "bank_id": bank.id,
                "signal_type": entry.signal_type,
                "signal": entry.signal,
                "note": entry.note,
                "source_ref": entry.source_ref,
                "created_by": created_by,
            }
            for entry in new
        ],
    )
    # Ids only grow, so ours are above ``before``; the keys tell ours from a concurrent import's.
    ids = {
        (kind, signal): entry_id
        for entry_id, kind, signal in db.session.execute(
            select(BankEntry.id, BankEntry.signal_type, BankEntry.signal).where(
                BankEntry.bank_id == bank.id, BankEntry.id > before
            )
        )
    }
    log_changes(
        [
            {
                "bank_id": bank.id,
                "entry_id": ids[entry.signal_type, entry.signal],
                "signal_type": entry.signal_type,
                "signal": entry.signal,
                "op": ChangeOp.ADD.value,
            }
            for entry in new
        ]
    )
    counts: dict[str, int] = {}
    for entry in new:
        counts[entry.signal_type] = counts.get(entry.signal_type, 0) + 1
    adjust_counts(bank.id, counts)
    report.added += len(new)


def _ids_of(bank: Bank, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of the entries of ``bank`` with these (type, signal) keys, through the unique index."""
    found: dict[tuple[str, str], int] = {}
    by_type: dict[str, list[str]] = {}
    for kind, signal in keys:
        by_type.setdefault(kind, []).append(signal)
    for kind, signals in by_type.items():
        for start in range(0, len(signals), 5000):  # within every database's parameter limit
            rows = db.session.execute(
                select(BankEntry.signal, BankEntry.id).where(
                    BankEntry.bank_id == bank.id,
                    BankEntry.signal_type == kind,
                    BankEntry.signal.in_(signals[start : start + 5000]),
                )
            )
            found.update(((kind, signal), entry_id) for signal, entry_id in rows)
    return found
