"""Starting the server loads only what serving needs: idle memory has a target (150 MB, DESIGN.md).

Each library named here costs megabytes and serves one feature, so that feature imports it when it
runs: threatexchange (with faiss) an exchange fetch, Flask-Migrate (with alembic, mako and
pygments) ``flask db``, onnxruntime the NudeNet scanner, boto3 S3 media storage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import make_test_config

ROOT = Path(__file__).resolve().parent.parent
FEATURE_LIBRARIES = (
    "threatexchange",
    "faiss",
    "flask_migrate",
    "alembic",
    "onnxruntime",
    "nudenet",
    "boto3",
    "botocore",
)


def test_starting_the_server_imports_no_library_that_only_one_feature_needs(
    instance_path: Path,
) -> None:
    # A fresh interpreter that makes the app as `python wsgi.py` and `flask --app wsgi` do.
    code = (
        "import sys, wsgi; "
        f"print(sorted(name for name in {FEATURE_LIBRARIES!r} if name in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT,
        env={**os.environ, "MODTOOLS_INSTANCE_PATH": str(instance_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert shown.strip() == "[]"


def test_flask_db_still_lists_its_commands_and_migrates(instance_path: Path) -> None:
    app = create_app(make_test_config(instance_path))  # no tables yet
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["--help"])
    assert "Perform database migrations." in listed.output
    assert "upgrade" in runner.invoke(args=["db", "--help"]).output
    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    with app.app_context():
        assert {"alembic_version", "items"} <= set(inspect(db.engine).get_table_names())
    assert runner.invoke(args=["db", "no-such-command"]).exit_code == 2


def test_the_ncmec_databases_offered_are_the_librarys() -> None:
    # Written out in exchange_kinds so the admin pages need not import threatexchange.
    from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

    from app.services.exchange_kinds import NCMEC_ENVIRONMENTS

    assert tuple(environment.name for environment in NCMECEnvironment) == NCMEC_ENVIRONMENTS
