"""The store's SQLite schema and its migrations.

The schema version lives in ``PRAGMA user_version``; ``PRAGMA application_id`` marks a file
as a tui_eval store, so that a foreign SQLite database is never mistaken for an empty store.
Each entry of ``MIGRATIONS`` upgrades the schema by one version and runs inside the caller's
write transaction.

Column order in ``traces`` matters: the list view reads only the leading summary columns,
and SQLite follows a row's overflow pages only when a later column is read, so the large
``info_json`` and ``spans_json`` columns come last.
"""

from __future__ import annotations

import sqlite3

# "TEV1" as a big-endian 32-bit integer.
APPLICATION_ID = 0x54455631

SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA_V1 = (
    """
    CREATE TABLE experiments (
        experiment_id  TEXT PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        creation_time  INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE runs (
        run_id         TEXT PRIMARY KEY,
        experiment_id  TEXT NOT NULL,
        name           TEXT,
        kind           TEXT NOT NULL,
        status         TEXT NOT NULL,
        start_time     INTEGER NOT NULL,
        end_time       INTEGER,
        params_json    TEXT NOT NULL DEFAULT '{}',
        metrics_json   TEXT NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time)",
    """
    CREATE TABLE traces (
        trace_id            TEXT PRIMARY KEY,
        experiment_id       TEXT NOT NULL,
        client_request_id   TEXT,
        state               TEXT NOT NULL,
        request_time        INTEGER NOT NULL,
        execution_duration  INTEGER,
        end_time            INTEGER,
        name                TEXT,
        request_preview     TEXT,
        response_preview    TEXT,
        input_tokens        INTEGER,
        output_tokens       INTEGER,
        total_tokens        INTEGER,
        span_count          INTEGER NOT NULL DEFAULT 0,
        size_bytes          INTEGER NOT NULL DEFAULT 0,
        run_id              TEXT,
        writer_pid          INTEGER,
        writer_host         TEXT,
        writer_started      INTEGER,
        info_json           TEXT NOT NULL,
        spans_json          TEXT NOT NULL DEFAULT '[]'
    )
    """,
    # Partial indexes cost a write only for the rows they cover: most traces have no run and
    # no client request id, and only unfinished traces are IN_PROGRESS.
    "CREATE INDEX traces_by_time ON traces (request_time DESC, trace_id)",
    "CREATE INDEX traces_by_run ON traces (run_id) WHERE run_id IS NOT NULL",
    "CREATE INDEX traces_in_progress ON traces (state) WHERE state = 'IN_PROGRESS'",
    "CREATE INDEX traces_by_client_request ON traces (client_request_id) WHERE client_request_id IS NOT NULL",
    """
    CREATE TABLE trace_tags (
        trace_id  TEXT NOT NULL,
        key       TEXT NOT NULL,
        value     TEXT NOT NULL,
        PRIMARY KEY (trace_id, key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE trace_metadata (
        trace_id  TEXT NOT NULL,
        key       TEXT NOT NULL,
        value     TEXT NOT NULL,
        PRIMARY KEY (trace_id, key)
    ) WITHOUT ROWID
    """,
    # One row per span, for the span.*, trace.text and span.attributes filters; ``content``
    # is the span's MLflow dict as JSON text (``traces.spans_json`` holds the same spans).
    """
    CREATE TABLE spans (
        trace_id        TEXT NOT NULL,
        position        INTEGER NOT NULL,
        span_id         TEXT NOT NULL,
        parent_span_id  TEXT,
        name            TEXT NOT NULL,
        type            TEXT,
        status          TEXT NOT NULL,
        start_time_ns   INTEGER,
        end_time_ns     INTEGER,
        content         TEXT NOT NULL
    )
    """,
    # A rowid table: new spans append at the end of the table instead of landing between
    # other traces' rows, which keeps a trace's write to a few pages.
    "CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, position)",
    """
    CREATE TABLE trace_runs (
        run_id    TEXT NOT NULL,
        trace_id  TEXT NOT NULL,
        PRIMARY KEY (run_id, trace_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX trace_runs_by_trace ON trace_runs (trace_id)",
    """
    CREATE TABLE assessments (
        assessment_id     TEXT NOT NULL UNIQUE,
        trace_id          TEXT NOT NULL,
        name              TEXT NOT NULL,
        kind              TEXT NOT NULL CHECK (kind IN ('feedback', 'expectation')),
        value_json        TEXT,
        value_text        TEXT,
        error_code        TEXT,
        rationale         TEXT,
        source_type       TEXT,
        source_id         TEXT,
        run_id            TEXT,
        span_id           TEXT,
        generation        TEXT,
        create_time       INTEGER,
        last_update_time  INTEGER,
        valid             INTEGER NOT NULL DEFAULT 1,
        assessment_json   TEXT NOT NULL
    )
    """,
    "CREATE INDEX assessments_by_trace ON assessments (trace_id, kind, name)",
    "INSERT INTO experiments (experiment_id, name, creation_time) "
    "VALUES ('0', 'Default', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
)

# MIGRATIONS[n] upgrades a store from schema version n to n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_SCHEMA_V1,)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, from_version: int) -> None:
    """Run every migration after ``from_version`` and stamp the new version.

    The caller holds a write transaction (BEGIN IMMEDIATE), so two processes opening a fresh
    store at once cannot both create the tables.
    """
    for version in range(from_version, SCHEMA_VERSION):
        for statement in MIGRATIONS[version]:
            connection.execute(statement)
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
