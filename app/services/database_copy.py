"""Copy every row of the current database into another one: the move from SQLite to PostgreSQL.

The target gets the schema from the models (``create_all``) and the Alembic revision of the
source, so ``flask db upgrade`` afterwards continues from the same point. Rows are copied table by
table in foreign-key order, in batches, and PostgreSQL's id sequences are moved past the highest
copied id so new rows do not collide. Stop the server and workers first: rows written during the
copy would be missed.
"""

from __future__ import annotations

from sqlalchemy import Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from app.extensions import db
from app.services.backup import BackupError

BATCH = 1000
GUARD_TABLES = ("items", "users")


def copy_database(target_url: str, force: bool = False) -> dict[str, int]:
    """Copy all rows into ``target_url``; returns rows copied per table."""
    url = make_url(target_url)
    if url.drivername == "postgresql":  # psycopg 3 is the driver we ship
        url = url.set(drivername="postgresql+psycopg")
    target = create_engine(url, poolclass=NullPool)  # one-shot: no connection outlives the copy
    metadata = db.metadata
    try:
        metadata.create_all(target)
        with target.begin() as destination:
            if not force and any(_has_rows(destination, name) for name in GUARD_TABLES):
                raise BackupError(
                    "The target database already holds items or users; "
                    "copy into an empty database, or pass --force."
                )
            counts = {}
            source = db.session.connection()
            for table in metadata.sorted_tables:
                counts[table.name] = _copy_table(source, destination, table)
            _copy_alembic_version(source, destination)
            if destination.dialect.name == "postgresql":
                _advance_sequences(destination, metadata.sorted_tables)
    finally:
        target.dispose()
    return counts


def _has_rows(connection: Connection, name: str) -> bool:
    return connection.execute(text(f"SELECT 1 FROM {name} LIMIT 1")).first() is not None


def _copy_table(source: Connection, destination: Connection, table: Table) -> int:
    existing = set(inspect(source).get_table_names())
    if table.name not in existing:  # a table the source never migrated to: nothing to copy
        return 0
    copied = 0
    result = source.execute(select(table)).yield_per(BATCH)
    for rows in result.partitions(BATCH):
        destination.execute(table.insert(), [dict(row._mapping) for row in rows])
        copied += len(rows)
    return copied


def _copy_alembic_version(source: Connection, destination: Connection) -> None:
    if "alembic_version" not in inspect(source).get_table_names():
        return
    version = source.execute(text("SELECT version_num FROM alembic_version")).scalar()
    destination.execute(
        text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    )
    destination.execute(text("DELETE FROM alembic_version"))
    if version:
        destination.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": version})


def _advance_sequences(destination: Connection, tables: list[Table]) -> None:
    for table in tables:
        for column in table.primary_key.columns:
            if not column.autoincrement or not _is_integer(column):
                continue
            sequence = destination.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if sequence:
                highest = destination.execute(select(func.max(column))).scalar() or 0
                destination.execute(
                    text("SELECT setval(:s, :v, :called)"),
                    {"s": sequence, "v": max(highest, 1), "called": highest > 0},
                )


def _is_integer(column: object) -> bool:
    try:
        return column.type.python_type is int  # type: ignore[attr-defined]
    except NotImplementedError:  # custom types without a Python type are never sequences
        return False
