"""``flask banks …``: what an operator typing the commands sees."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from app.extensions import db
from app.services.banks import find_bank, match_hashes

PDQ = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"
MD5 = "d35c785545392755e7e4164457657269"


def test_create_then_list(runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=[
            "banks",
            "create",
            "NCII hashes",
            "--label",
            "ncii",
            "--label",
            "StopNCII",
            "--threshold",
            "20",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Created bank 'NCII hashes'" in result.output
    result = runner.invoke(args=["banks", "create", "Benign", "--negative"])
    assert "Created negative bank 'Benign'" in result.output
    listing = runner.invoke(args=["banks", "list"]).output
    assert "NCII hashes" in listing and "labels=ncii,stopncii" in listing
    assert "d<=20" in listing and "negative" in listing
    [benign, ncii] = json.loads(runner.invoke(args=["banks", "list", "--json"]).output)
    assert (ncii["labels"], ncii["pdq_threshold"], benign["negative"]) == (
        ["ncii", "stopncii"],
        20,
        True,
    )


def test_refusals_say_what_to_do(runner: FlaskCliRunner) -> None:
    runner.invoke(args=["banks", "create", "Spam"])
    again = runner.invoke(args=["banks", "create", "spam"])
    assert again.exit_code == 1 and "already exists" in again.output
    far = runner.invoke(args=["banks", "create", "Far", "--threshold", "40"])
    assert far.exit_code == 1 and "0 to 31" in far.output
    missing = runner.invoke(args=["banks", "import", "Nope", "-"], input="")
    assert missing.exit_code == 1 and "flask banks list" in missing.output
    assert "No banks yet" not in runner.invoke(args=["banks", "list"]).output


def test_import_reports_and_fails_on_bad_lines(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    runner.invoke(args=["banks", "create", "CSAM", "--label", "csam"])
    good = tmp_path / "good.txt"
    good.write_text(f"pdq {PDQ}\nmd5 {MD5}\n")
    result = runner.invoke(args=["banks", "import", "CSAM", str(good)])
    assert result.exit_code == 0, result.output
    assert "te: 2 added, 0 already there" in result.output
    with app.app_context():
        [found] = match_hashes(sha256=None, md5=MD5, pdq=None, pdq_quality=None)
        assert found.bank_name == "CSAM"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"signal_type,signal\npdq,{PDQ}\nvideo_md5,{MD5}\n")
    result = runner.invoke(args=["banks", "import", "csam", str(bad), "--format", "csv"])
    assert result.exit_code == 1
    assert "0 added, 1 already there" in result.output
    assert "line 3: “video_md5” is a video hash" in result.output
    as_json = runner.invoke(args=["banks", "import", "CSAM", str(bad), "--json"])
    assert json.loads(as_json.stdout)["error_lines"] == [
        {
            "line": 3,
            "message": "“video_md5” is a video hash; banks match images (sha256, md5, pdq).",
        }
    ]


def test_export_to_a_file_and_to_standard_output(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    runner.invoke(args=["banks", "create", "CSAM"])
    runner.invoke(args=["banks", "import", "CSAM", "-"], input=f"pdq,{PDQ},note\n")
    out = tmp_path / "out.txt"
    result = runner.invoke(args=["banks", "export", "CSAM", str(out), "--format", "te"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == f"pdq {PDQ}\n"
    printed = runner.invoke(args=["banks", "export", "CSAM", "--format", "csv"]).output
    assert printed.splitlines() == ["signal_type,signal,note", f"pdq,{PDQ},note"]
    hma = runner.invoke(args=["banks", "export", "CSAM", "--format", "hma"]).output
    assert json.loads(hma)["signals"] == {"pdq": PDQ}
    with app.app_context():
        bank = find_bank("csam")
        assert bank is not None and bank.pdq_count == 1
        db.session.remove()
