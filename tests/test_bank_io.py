"""Importing and exporting bank entries: CSV, threatexchange files and HMA bank content."""

from __future__ import annotations

import io
import json
import time

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.bank import Bank, BankChange, BankEntry
from app.services import bank_export, bank_io, banks
from app.services.audit import Actor
from app.services.banks import match_hashes

ADMIN = Actor("user", "1", "admin@example.org")
PDQ = ["%064x" % (0x1234567 * (k + 1) ** 7) for k in range(5)]
MD5 = "0123456789abcdef" * 2
SHA = "fedcba9876543210" * 4


def new_bank(name: str = "Imported") -> Bank:
    bank = banks.create_bank(name, ADMIN, labels=["spam"])
    db.session.commit()
    return bank


def run_import(bank: Bank, text: str, fmt: str | None = None) -> bank_io.ImportReport:
    return bank_io.import_entries(
        bank, io.BytesIO(text.encode()), ADMIN, fmt=fmt, filename="hashes.txt"
    )


def entries(bank: Bank) -> list[tuple[str, str, str | None]]:
    return [
        tuple(row)
        for row in db.session.execute(
            select(BankEntry.signal_type, BankEntry.signal, BankEntry.note)
            .where(BankEntry.bank_id == bank.id)
            .order_by(BankEntry.id)
        )
    ]


def test_csv_with_header_imports_and_reports_bad_lines_by_number(app: Flask) -> None:
    with app.app_context():
        bank = new_bank()
        report = run_import(
            bank,
            "\n".join(
                [
                    "signal_type,signal,note",
                    f'pdq,{PDQ[0].upper()},"first, with a comma"',
                    f"md5,{MD5}",
                    "",
                    f"sha256,{SHA[:-2]}",
                    f"video_md5,{MD5}",
                    f"photodna,{PDQ[1]}",
                    f"pdq,{PDQ[0]},again",
                ]
            )
            + "\n",
        )
        assert (report.format, report.added, report.duplicates) == ("csv", 2, 1)
        assert [where for where, _ in report.errors] == [5, 6, 7]
        assert "64 hexadecimal" in report.errors[0][1]
        assert "video hash" in report.errors[1][1]
        assert "Unknown hash type" in report.errors[2][1]
        assert entries(bank) == [("pdq", PDQ[0], "first, with a comma"), ("md5", MD5, None)]
        assert db.session.get(Bank, bank.id).pdq_count == 1
        row = db.session.scalar(select(BankEntry).where(BankEntry.signal_type == "pdq"))
        assert row.source_ref == "hashes.txt:2"


def test_threatexchange_files_are_read_as_pytx_writes_them(app: Flask) -> None:
    with app.app_context():
        bank = new_bank()
        text = (
            f"pdq {PDQ[0]}\r\n# a comment\r\n\r\nPDQ {PDQ[1]}\r\nmd5 {MD5}\r\n"
            f"video_md5 {MD5}\r\n{PDQ[2]}\r\nsha256 {SHA} extra\r\n"
        )
        report = run_import(bank, text)
        assert (report.format, report.added) == ("te", 3)
        assert [where for where, _ in report.errors] == [6, 7, 8]
        assert report.lines == 8


def test_hma_content_lines_and_arrays_are_imported(app: Flask) -> None:
    with app.app_context():
        bank = new_bank()
        lines = [
            {
                "bank": {"name": "TEST_BANK"},
                "id": 2,
                "disable_until_ts": 1,
                "note": "hello",
                "metadata": {"content_id": "post-42"},
                "signals": {"pdq": PDQ[0]},
            },
            {"id": 3, "disable_until_ts": 0, "signals": {"pdq": PDQ[1]}},  # disabled in HMA
            {"id": 4, "disable_until_ts": int(time.time()) + 3600, "signals": {"pdq": PDQ[1]}},
            {"id": 5, "signals": {"video_md5": MD5}},
            {"pdq": PDQ[2], "note": "POST /c/bank/<bank>/signal body"},
        ]
        text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
        report = run_import(bank, text)
        assert (report.format, report.added, report.skipped) == ("hma", 2, 2)
        assert [where for where, _ in report.errors] == [4, 6]
        first = db.session.scalar(select(BankEntry).where(BankEntry.signal == PDQ[0]))
        assert (first.note, first.source_ref) == ("hello", "hma:TEST_BANK/2")
        array = run_import(new_bank("Array"), json.dumps([{"signals": {"md5": MD5}}, 7]))
        assert (array.unit, array.added, array.errors[0][0]) == ("item", 1, 2)


@pytest.mark.parametrize("fmt", ["csv", "te", "hma"])
def test_every_format_round_trips_through_export(app: Flask, fmt: str) -> None:
    with app.app_context():
        source = new_bank("Source")
        for k, pdq in enumerate(PDQ):
            banks.add_entry(source, "pdq", pdq, ADMIN, note=f'=note {k}, with "quotes"')
        banks.add_entry(source, "md5", MD5, ADMIN)
        banks.add_entry(source, "sha256", SHA, ADMIN, note="-1")
        db.session.commit()
        exported = "".join(bank_export.export_lines(source, fmt, batch=3))
        if fmt == "csv":
            assert "'=note 0" in exported  # defused for spreadsheets
        copy = new_bank("Copy")
        report = run_import(copy, exported)  # the format is recognised
        assert (report.format, report.added, report.error_count) == (fmt, 7, 0)
        expected = entries(source) if fmt != "te" else [(t, s, None) for t, s, _ in entries(source)]
        assert entries(copy) == expected
        again = run_import(copy, exported, fmt=fmt)
        assert (again.added, again.duplicates) == (0, 7)


def test_hma_export_has_the_shape_hma_returns_for_bank_content(app: Flask) -> None:
    with app.app_context():
        bank = new_bank()
        banks.add_entry(bank, "pdq", PDQ[0], ADMIN, note="n")
        db.session.commit()
        [line] = "".join(bank_export.export_lines(bank, "hma")).splitlines()
        content = json.loads(line)
        assert content["signals"] == {"pdq": PDQ[0]}
        assert content["bank"] == {"name": "Imported", "matching_enabled_ratio": 1.0}
        assert set(content) == {
            "bank",
            "disable_until_ts",
            "id",
            "metadata",
            "note",
            "original_media_uri",
            "signals",
        }


def test_large_imports_stream_in_batches_and_match_at_once(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bank_io, "BATCH", 1000)
    with app.app_context():
        bank = new_bank()
        count = 3 * bank_io.BATCH + 17
        pdqs = ["%064x" % (k * 0x9E3779B97F4A7C15**3 % 2**256) for k in range(1, count + 1)]
        text = "\ufeff" + "".join(f"pdq {pdq}\n" for pdq in pdqs) + "pdq nothex\n" * 150
        report = run_import(bank, text)
        assert (report.added, report.error_count, len(report.errors)) == (count, 150, 100)
        assert db.session.scalar(select(func.count()).select_from(BankChange)) == count + 1
        [found] = match_hashes(sha256=None, md5=None, pdq=pdqs[-1], pdq_quality=100)
        assert found.bank_name == "Imported"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "bank.imported"))
        assert event.details["added"] == count
        assert pdqs[0] not in json.dumps(event.details)


def test_format_detection() -> None:
    assert bank_io.detect_format("signal_type,signal") == "csv"
    assert bank_io.detect_format(f"md5,{MD5}") == "csv"
    assert bank_io.detect_format(f"pdq {PDQ[0]}") == "te"
    assert bank_io.detect_format('{"signals": {}}') == "hma"
    assert bank_io.detect_format("[") == "hma"
