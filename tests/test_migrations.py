"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import make_test_config


def test_migrations_match_the_models(instance_path: Path) -> None:
    app = create_app(make_test_config(instance_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"render_as_batch": True})
            differences = compare_metadata(context, db.metadata)
    assert differences == [], "run `flask --app wsgi db migrate` and commit the migration"


def test_migrations_downgrade_to_empty_and_up_again(instance_path: Path) -> None:
    app = create_app(make_test_config(instance_path))
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        from sqlalchemy import inspect

        assert "items" in inspect(db.engine).get_table_names()
