"""Checks that a file is a tui_eval store this version can open, made without writing to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tui_eval.errors import StoreError, StoreFormatError
from tui_eval.store import schema


def is_current(connection: sqlite3.Connection) -> bool:
    """Return whether the open database is a tui_eval store at this version's schema."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    return version == schema.SCHEMA_VERSION and application_id == schema.APPLICATION_ID


def has_tables(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0


def newer_schema_error(path: Path, version: int) -> StoreFormatError:
    return StoreFormatError(
        f"cannot open the store {path}: it was written by a newer tui_eval (schema version {version}; "
        f"this version reads up to {schema.SCHEMA_VERSION}). Upgrade tui_eval to open it; the file was not changed."
    )


def foreign_database_error(path: Path) -> StoreFormatError:
    return StoreFormatError(
        f"cannot open the store {path}: it is a SQLite database of another application, not a tui_eval store. "
        "Pass another path with --store or TUI_EVAL_STORE; the file was not changed."
    )


def check_existing_store(path: Path) -> None:
    """Raise StoreFormatError unless ``path`` is a tui_eval store this version can open.

    Only the 100-byte database header is read: SQLite keeps the schema cookie, user_version
    and application_id there. Opening the file through SQLite, even read-only, would create
    ``-wal`` and ``-shm`` files beside a database that is not ours. A store whose newest
    header is still in its WAL is checked again inside the migration transaction.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except OSError as error:
        raise StoreError(f"cannot open the store {path}: {error.strerror or error}") from error
    if not header.startswith(schema.SQLITE_HEADER):
        raise StoreFormatError(
            f"cannot open the store {path}: it is not a SQLite database (it starts with {header[:16]!r}). "
            "Pass the path of a tui_eval store, or a new file name, with --store or TUI_EVAL_STORE; "
            "the file was not changed."
        )
    if len(header) < 100:
        raise StoreFormatError(
            f"cannot open the store {path}: its SQLite header is cut short ({len(header)} of 100 bytes); "
            "the file was not changed."
        )
    schema_cookie = int.from_bytes(header[40:44], "big")
    version = int.from_bytes(header[60:64], "big")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == schema.APPLICATION_ID and version > schema.SCHEMA_VERSION:
        raise newer_schema_error(path, version)
    if application_id != schema.APPLICATION_ID and (schema_cookie or application_id or version):
        raise foreign_database_error(path)
