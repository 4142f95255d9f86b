"""The SQLite trace store: one file shared by every process that records, scores or browses traces."""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tui_eval.entities import ids
from tui_eval.entities.assessment import Assessment
from tui_eval.entities.trace import Trace, TraceData
from tui_eval.entities.trace_info import TraceInfo
from tui_eval.entities.trace_state import TraceState
from tui_eval.errors import InvalidParameterError, StoreError
from tui_eval.store import schema
from tui_eval.store.decode import load_frame_rows, load_traces
from tui_eval.store.file_format import (
    check_existing_store,
    foreign_database_error,
    has_tables,
    is_current,
    newer_schema_error,
)
from tui_eval.store.connection import connect, configure_for_writing, read_transaction, retry_on_busy, write_transaction
from tui_eval.store.frame import rows_to_dataframe
from tui_eval.store.filters import ATTRIBUTE, Clause, compile_clauses, compile_filter, compile_order_by
from tui_eval.store.processes import process_alive, process_start_ticks
from tui_eval.store.records import (
    ASSESSMENT_COLUMNS,
    SPAN_COLUMNS,
    TRACE_COLUMNS,
    TRACE_NAME_TAG,
    TraceRecord,
    TraceSummary,
    assessment_row,
    build_record,
    dumps,
)

if TYPE_CHECKING:
    import pandas

logger = logging.getLogger(__name__)

T = TypeVar("T")

STORE_ENV_VAR = "TUI_EVAL_STORE"
DEFAULT_STORE_NAME = "tui_eval.db"
DEFAULT_EXPERIMENT_NAME = "Default"
# Metadata key that explains why a trace was closed as ERROR without finishing.
INCOMPLETE_KEY = "tui_eval.incomplete"
# Traces written per transaction by log_traces. Larger batches write faster, and another
# writer waits for at most one batch (readers never wait in WAL mode).
BATCH_SIZE = 200

_INSERT_TRACE = (
    f"INSERT OR REPLACE INTO traces ({', '.join(TRACE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TRACE_COLUMNS)})"
)
_INSERT_NEW_TRACE = _INSERT_TRACE.replace("INSERT OR REPLACE", "INSERT OR IGNORE", 1)
_INSERT_TAG = "INSERT INTO trace_tags (trace_id, key, value) VALUES (?, ?, ?)"
_INSERT_METADATA = "INSERT INTO trace_metadata (trace_id, key, value) VALUES (?, ?, ?)"
_INSERT_SPAN = f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' for _ in SPAN_COLUMNS)})"
_UPSERT_ASSESSMENT = (
    f"INSERT INTO assessments ({', '.join(ASSESSMENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ASSESSMENT_COLUMNS)}) "
    "ON CONFLICT (assessment_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in ASSESSMENT_COLUMNS[1:])
)
_SUMMARY_COLUMNS = (
    "t.trace_id, t.name, t.request_time, t.execution_duration, t.state, "
    "t.request_preview, t.response_preview, t.total_tokens, t.span_count"
)


def default_store_path() -> Path:
    """Return the store path from ``TUI_EVAL_STORE``, else ``./tui_eval.db`` in the working directory."""
    configured = os.environ.get(STORE_ENV_VAR)
    if configured:
        return Path(_strip_sqlite_uri(configured)).expanduser()
    return Path.cwd() / DEFAULT_STORE_NAME


def _strip_sqlite_uri(location: str) -> str:
    """Accept MLflow-style ``sqlite:///path`` URIs as well as plain paths."""
    if location.startswith("sqlite:///"):
        return location[len("sqlite:///"):]
    return location


class Store:
    """A trace store in one SQLite file; safe to share between threads and processes.

    Opening checks the file first through a read-only connection: a file that is not SQLite,
    a SQLite database of another application, or a store written by a newer schema raises
    StoreFormatError and is left untouched. A new or older store is created or migrated.
    Opening also closes traces whose writing process died (see ``recover_abandoned_traces``).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(_strip_sqlite_uri(os.fspath(path))).expanduser()
        self._lock = threading.RLock()
        self._closed = False
        self._connection = self._open()
        self._owner_pid = os.getpid()
        # Connections inherited across fork() are kept referenced, never closed or used.
        self._inherited: list[sqlite3.Connection] = []
        self.recover_abandoned_traces()

    # --- opening --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise StoreError(f"cannot open the store {self.path}: it is a directory; pass a file path such as {self.path / DEFAULT_STORE_NAME}")
        if self.path.exists() and self.path.stat().st_size > 0:
            check_existing_store(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = connect(self.path)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the store {self.path}: {error}") from error
        try:
            configure_for_writing(connection)
            if not is_current(connection):
                with write_transaction(connection):
                    self._migrate(connection)
        except sqlite3.DatabaseError as error:
            connection.close()
            raise StoreError(f"cannot open the store {self.path}: {error}") from error
        except BaseException:
            connection.close()
            raise
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        if version > schema.SCHEMA_VERSION:
            raise newer_schema_error(self.path, version)
        if version == schema.SCHEMA_VERSION and application_id == schema.APPLICATION_ID:
            return
        if application_id not in (0, schema.APPLICATION_ID) or (version == 0 and has_tables(connection)):
            raise foreign_database_error(self.path)
        logger.info("migrating the store %s from schema %d to %d", self.path, version, schema.SCHEMA_VERSION)
        schema.migrate(connection, version)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open a new Store to use it")
        if os.getpid() != self._owner_pid:
            # After fork() the parent's connection must not be used by the child.
            self._inherited.append(self._connection)
            self._connection = self._open()
            self._owner_pid = os.getpid()
        return self._connection

    def close(self) -> None:
        """Close the connection; later calls raise StoreError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._owner_pid:
                self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- transactions ---------------------------------------------------------------------

    def _read(self, what: str, action: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._conn()

            def attempt() -> T:
                with read_transaction(connection):
                    return action(connection)

            try:
                return retry_on_busy(attempt, what=what)
            except sqlite3.DatabaseError as error:
                raise StoreError(f"could not {what} in {self.path}: {error}") from error

    def _write(self, what: str, action: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._conn()
            try:
                with write_transaction(connection):
                    return action(connection)
            except sqlite3.DatabaseError as error:
                raise StoreError(f"could not {what} in {self.path}: {error}") from error

    # --- experiments and runs -------------------------------------------------------------

    def get_or_create_experiment(self, name: str = DEFAULT_EXPERIMENT_NAME) -> str:
        """Return the id of the experiment called ``name``, creating it if needed ("0" is Default)."""
        if not name:
            raise InvalidParameterError("invalid experiment name '': pass a non-empty name")
        found = self._read(
            "look up an experiment",
            lambda c: c.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone(),
        )
        if found:
            return found[0]

        def create(connection: sqlite3.Connection) -> str:
            row = connection.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
            if row:
                return row[0]
            # Imported traces may name experiment ids that have no row here; never reuse those.
            highest = connection.execute(
                "SELECT MAX(CAST(experiment_id AS INTEGER)) FROM ("
                " SELECT experiment_id FROM experiments UNION SELECT DISTINCT experiment_id FROM traces)"
                " WHERE experiment_id GLOB '[0-9]*' AND experiment_id NOT GLOB '*[^0-9]*'"
            ).fetchone()[0]
            experiment_id = str((highest or 0) + 1)
            connection.execute(
                "INSERT INTO experiments (experiment_id, name, creation_time) VALUES (?, ?, ?)",
                (experiment_id, name, _now_ms()),
            )
            return experiment_id

        return self._write("create an experiment", create)

    def list_experiments(self) -> list[dict[str, Any]]:
        """Return every experiment as ``{experiment_id, name, creation_time}``, oldest first."""
        rows = self._read(
            "list experiments",
            lambda c: c.execute(
                "SELECT experiment_id, name, creation_time FROM experiments ORDER BY creation_time, experiment_id"
            ).fetchall(),
        )
        return [{"experiment_id": row[0], "name": row[1], "creation_time": row[2]} for row in rows]

    def create_run(
        self, experiment_id: str, name: str | None, kind: str, params: dict[str, Any] | None = None
    ) -> str:
        """Create a run (an evaluation, a generation, an import) in state RUNNING; return its 32-hex id."""
        run_id = ids.new_run_id()
        self._write(
            "create a run",
            lambda c: c.execute(
                "INSERT INTO runs (run_id, experiment_id, name, kind, status, start_time, params_json) "
                "VALUES (?, ?, ?, ?, 'RUNNING', ?, ?)",
                (run_id, str(experiment_id), name, kind, _now_ms(), dumps(params or {})),
            ),
        )
        return run_id

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Set a run's status (FINISHED, FAILED, KILLED), end time (ms) or metrics; metrics are merged."""

        def update(connection: sqlite3.Connection) -> None:
            row = connection.execute("SELECT metrics_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise InvalidParameterError(f"run {run_id!r} not found in the store {self.path}")
            if status is not None:
                finished = end_time
                if finished is None and status != "RUNNING":
                    finished = _now_ms()
                connection.execute(
                    "UPDATE runs SET status = ?, end_time = ? WHERE run_id = ?", (status, finished, run_id)
                )
            elif end_time is not None:
                connection.execute("UPDATE runs SET end_time = ? WHERE run_id = ?", (end_time, run_id))
            if metrics:
                merged = {**json.loads(row[0]), **metrics}
                connection.execute("UPDATE runs SET metrics_json = ? WHERE run_id = ?", (dumps(merged), run_id))

        self._write("update a run", update)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Return the run as a dict (run_id, experiment_id, name, kind, status, times, params, metrics), or None."""
        rows = self._read("read a run", lambda c: c.execute(_RUN_SELECT + " WHERE run_id = ?", (run_id,)).fetchall())
        return _run_dict(rows[0]) if rows else None

    def list_runs(self, experiment_id: str | None = None) -> list[dict[str, Any]]:
        """Return runs, newest first, of one experiment or of all."""
        if experiment_id is None:
            query, params = _RUN_SELECT + " ORDER BY start_time DESC, run_id", ()
        else:
            query, params = _RUN_SELECT + " WHERE experiment_id = ? ORDER BY start_time DESC, run_id", (str(experiment_id),)
        rows = self._read("list runs", lambda c: c.execute(query, params).fetchall())
        return [_run_dict(row) for row in rows]

    def link_traces_to_run(self, run_id: str, trace_ids: Iterable[str]) -> None:
        """Link traces to a run, so ``run_id`` searches find them; linking twice is harmless."""
        rows = [(run_id, trace_id) for trace_id in trace_ids]
        self._write(
            "link traces to a run",
            lambda c: c.executemany("INSERT OR IGNORE INTO trace_runs (run_id, trace_id) VALUES (?, ?)", rows),
        )

    # --- writing traces -------------------------------------------------------------------

    def begin_trace(self, info: TraceInfo, pid: int) -> None:
        """Record that process ``pid`` started the trace, as an IN_PROGRESS row.

        If that process dies before ``log_trace``, the next Store opened on this host marks
        the row ERROR with a reason. A trace already finished in the store is left alone.
        """
        writer = (int(pid), socket.gethostname(), process_start_ticks(int(pid)))
        record = build_record(Trace(info, TraceData([])), writer=writer)

        def write(connection: sqlite3.Connection) -> None:
            inserted = connection.execute(_INSERT_NEW_TRACE, record.trace_row).rowcount
            if inserted:
                connection.executemany(_INSERT_TAG, record.tag_rows)
                connection.executemany(_INSERT_METADATA, record.metadata_rows)
                return
            row = connection.execute("SELECT state FROM traces WHERE trace_id = ?", (info.trace_id,)).fetchone()
            if row[0] != TraceState.IN_PROGRESS.value:
                logger.debug("begin_trace ignored for %s: it is already stored as %s", info.trace_id, row[0])
                return
            _write_records(connection, [record])

        self._write(f"begin the trace {info.trace_id}", write)

    def log_trace(self, trace: Trace) -> None:
        """Write the whole trace (row, spans, tags, metadata, assessments) in one transaction.

        It replaces an IN_PROGRESS row or an earlier copy of the same trace. Assessments are
        merged by id, so scores logged against an earlier copy stay.
        """
        record = build_record(trace)
        self._write(f"write the trace {trace.info.trace_id}", lambda c: _write_records(c, [record]))

    def log_traces(
        self,
        traces: Iterable[Trace],
        *,
        on_error: Callable[[Trace, Exception], None] | None = None,
        on_written: Callable[[Trace], None] | None = None,
    ) -> int:
        """Write many traces, ``BATCH_SIZE`` per transaction, each trace whole; return how many.

        With ``on_error``, a trace that cannot be turned into rows (a broken imported trace)
        is passed to it and skipped. Without it, the error propagates, and the traces of
        earlier batches stay written. ``on_written`` is called for each trace once its batch
        is committed.
        """
        count = 0
        batch: list[tuple[Trace, TraceRecord]] = []

        def flush() -> None:
            records = [record for _, record in batch]
            self._write("write traces", lambda c: _write_records(c, records))
            if on_written is not None:
                for trace, _ in batch:
                    on_written(trace)

        for trace in traces:
            try:
                record = build_record(trace)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                if on_error is None:
                    raise
                on_error(trace, error)
                continue
            batch.append((trace, record))
            if len(batch) >= BATCH_SIZE:
                flush()
                count += len(batch)
                batch = []
        if batch:
            flush()
            count += len(batch)
        return count

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        """Set one tag on a stored trace (``mlflow.traceName`` also renames it in the list)."""
        if not isinstance(key, str) or not key:
            raise InvalidParameterError(f"invalid tag key {key!r}: pass a non-empty string")

        def write(connection: sqlite3.Connection) -> None:
            info = self._load_info(connection, trace_id)
            info.setdefault("tags", {})[key] = str(value)
            connection.execute("UPDATE traces SET info_json = ? WHERE trace_id = ?", (dumps(info), trace_id))
            connection.execute(
                "INSERT OR REPLACE INTO trace_tags (trace_id, key, value) VALUES (?, ?, ?)", (trace_id, key, str(value))
            )
            if key == TRACE_NAME_TAG:
                connection.execute("UPDATE traces SET name = ? WHERE trace_id = ?", (str(value), trace_id))

        self._write(f"set a tag on the trace {trace_id}", write)

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        """Remove one tag from a stored trace; removing a tag that is not there is harmless."""

        def write(connection: sqlite3.Connection) -> None:
            info = self._load_info(connection, trace_id)
            tags = info.get("tags") or {}
            if key not in tags:
                return
            del tags[key]
            connection.execute("UPDATE traces SET info_json = ? WHERE trace_id = ?", (dumps(info), trace_id))
            connection.execute("DELETE FROM trace_tags WHERE trace_id = ? AND key = ?", (trace_id, key))

        self._write(f"delete a tag from the trace {trace_id}", write)

    def _load_info(self, connection: sqlite3.Connection, trace_id: str) -> dict[str, Any]:
        row = connection.execute("SELECT info_json FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        if row is None:
            raise InvalidParameterError(f"trace {trace_id!r} not found in the store {self.path}")
        return json.loads(row[0])

    # --- assessments ----------------------------------------------------------------------

    def log_assessment(self, assessment: Assessment) -> Assessment:
        """Store one feedback or expectation; assign its ``assessment_id`` if it has none.

        An assessment whose ``overrides`` names another marks that one invalid (``valid=False``).
        """
        self.log_assessments([assessment])
        return assessment

    def log_assessments(self, assessments: Iterable[Assessment]) -> None:
        """Store many assessments in one transaction; each must name a stored trace."""
        items = list(assessments)
        for item in items:
            if not item.trace_id:
                raise InvalidParameterError(
                    f"assessment {item.name!r} has no trace_id: set trace_id to the trace it scores"
                )
            if not item.assessment_id:
                item.assessment_id = ids.new_assessment_id()
        dicts = [item.to_dictionary() for item in items]
        rows = [
            assessment_row(data, times=(item.create_time_ms, item.last_update_time_ms))
            for item, data in zip(items, dicts)
        ]
        overridden = [(data["overrides"],) for data in dicts if data.get("overrides")]
        trace_ids = sorted({item.trace_id for item in items})

        def write(connection: sqlite3.Connection) -> None:
            found = {
                row[0]
                for row in connection.execute(
                    "SELECT trace_id FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
                    (json.dumps(trace_ids),),
                )
            }
            missing = [trace_id for trace_id in trace_ids if trace_id not in found]
            if missing:
                raise InvalidParameterError(
                    f"cannot log assessments: trace(s) {', '.join(missing[:5])} not found in the store {self.path}"
                )
            connection.executemany(_UPSERT_ASSESSMENT, rows)
            if overridden:
                connection.executemany(_INVALIDATE_BY_ID, overridden)

        if items:
            self._write("write assessments", write)

    def invalidate_assessments(
        self,
        trace_ids: Iterable[str],
        name: str | None = None,
        source_id: str | None = None,
        generation_tag: str | None = None,
    ) -> int:
        """Mark valid feedback on the given traces invalid (``valid=False``); return how many.

        ``name`` and ``source_id`` narrow the match. With ``generation_tag``, only feedback
        written by the workbench (metadata ``tui_eval.generation`` present) from another
        generation is invalidated, so the given generation's results and scores from other
        tools stay valid. Expectations are never invalidated.
        """
        conditions = ["trace_id IN (SELECT value FROM json_each(?))", "kind = 'feedback'", "valid = 1"]
        params: list[Any] = [json.dumps(list(trace_ids))]
        if name is not None:
            conditions.append("name = ?")
            params.append(name)
        if source_id is not None:
            conditions.append("source_id = ?")
            params.append(source_id)
        if generation_tag is not None:
            conditions.append("generation IS NOT NULL AND generation != ?")
            params.append(str(generation_tag))
        query = (
            "UPDATE assessments SET valid = 0, assessment_json = json_set(assessment_json, '$.valid', json('false')) "
            "WHERE " + " AND ".join(conditions)
        )
        return self._write("invalidate assessments", lambda c: c.execute(query, params).rowcount)

    def delete_assessments(self, assessment_ids: Iterable[str]) -> int:
        """Delete assessments by id; return how many were deleted."""
        payload = json.dumps(list(assessment_ids))
        return self._write(
            "delete assessments",
            lambda c: c.execute(
                "DELETE FROM assessments WHERE assessment_id IN (SELECT value FROM json_each(?))", (payload,)
            ).rowcount,
        )

    # --- reading --------------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> Trace | None:
        """Return the whole trace with every assessment (valid and invalidated), or None."""
        found = self.get_traces([trace_id])
        return found[0] if found else None

    def get_traces(self, trace_ids: Sequence[str]) -> list[Trace]:
        """Return the stored traces among ``trace_ids``, in the order given; unknown ids are skipped."""
        wanted = list(dict.fromkeys(trace_ids))
        if not wanted:
            return []

        def read(connection: sqlite3.Connection) -> list[Trace]:
            rows = connection.execute(
                "SELECT t.trace_id, t.state, t.request_time, t.info_json, t.spans_json FROM traces t "
                "WHERE t.trace_id IN (SELECT value FROM json_each(?))",
                (json.dumps(wanted),),
            ).fetchall()
            by_id = {trace.info.trace_id: trace for trace in load_traces(connection, rows)}
            return [by_id[trace_id] for trace_id in wanted if trace_id in by_id]

        return self._read("read traces", read)

    def search_traces(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> list[Trace]:
        """Return the traces matching MLflow's ``filter_string``, newest first unless ``order_by`` is given.

        ``experiment_ids`` None means every experiment; ``max_results`` None means all.
        With ``include_spans=False`` the traces carry no spans (their info and assessments only).
        """
        query, params = self._trace_query(experiment_ids, filter_string, max_results, order_by, run_id, include_spans)
        return self._read("search traces", lambda c: load_traces(c, c.execute(query, params).fetchall()))

    def search_traces_frame(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        filter_string: str | None = None,
        max_results: int | None = None,
        order_by: Sequence[str] | str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> pandas.DataFrame:
        """Return ``search_traces`` as MLflow's DataFrame, built from the stored JSON without entities.

        Equal, cell for cell, to ``frame.traces_to_dataframe(self.search_traces(...))``, and
        several times faster.
        """
        query, params = self._trace_query(experiment_ids, filter_string, max_results, order_by, run_id, include_spans)
        rows = self._read("search traces", lambda c: load_frame_rows(c, c.execute(query, params).fetchall()))
        return rows_to_dataframe(rows)

    def _trace_query(
        self,
        experiment_ids: Sequence[str] | str | None,
        filter_string: str | None,
        max_results: int | None,
        order_by: Sequence[str] | str | None,
        run_id: str | None,
        include_spans: bool,
    ) -> tuple[str, list[Any]]:
        where, params = self._where(filter_string, run_id, experiment_ids)
        spans_column = "t.spans_json" if include_spans else "'[]'"
        query = (
            f"SELECT t.trace_id, t.state, t.request_time, t.info_json, {spans_column} FROM traces t "
            f"WHERE {where} ORDER BY {compile_order_by(order_by)} LIMIT ?"
        )
        params.append(_limit(max_results))
        return query, params

    def search_trace_ids(
        self,
        filter_string: str | None = None,
        run_id: str | None = None,
        order_by: Sequence[str] | str | None = None,
        max_results: int | None = None,
        experiment_ids: Sequence[str] | str | None = None,
    ) -> list[str]:
        """Return the ids of the matching traces, in the same order ``search_traces`` uses."""
        where, params = self._where(filter_string, run_id, experiment_ids)
        query = f"SELECT t.trace_id FROM traces t WHERE {where} ORDER BY {compile_order_by(order_by)} LIMIT ?"
        params.append(_limit(max_results))
        rows = self._read("search trace ids", lambda c: c.execute(query, params).fetchall())
        return [row[0] for row in rows]

    def list_summaries(
        self,
        filter_string: str | None = None,
        run_id: str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int | None = None,
        offset: int = 0,
        experiment_ids: Sequence[str] | str | None = None,
    ) -> list[TraceSummary]:
        """Return one page of the trace list; reads only the summary columns, never the spans."""
        where, params = self._where(filter_string, run_id, experiment_ids)
        query = (
            f"SELECT {_SUMMARY_COLUMNS} FROM traces t WHERE {where} "
            f"ORDER BY {compile_order_by(order_by)} LIMIT ? OFFSET ?"
        )
        params.extend((_limit(limit), max(0, int(offset))))
        rows = self._read("list traces", lambda c: c.execute(query, params).fetchall())
        return [TraceSummary(*row) for row in rows]

    def count_traces(
        self,
        filter_string: str | None = None,
        run_id: str | None = None,
        experiment_ids: Sequence[str] | str | None = None,
    ) -> int:
        """Return how many traces match."""
        where, params = self._where(filter_string, run_id, experiment_ids)
        query = f"SELECT COUNT(*) FROM traces t WHERE {where}"
        return self._read("count traces", lambda c: c.execute(query, params).fetchone()[0])

    def _where(
        self,
        filter_string: str | None,
        run_id: str | None,
        experiment_ids: Sequence[str] | str | None,
    ) -> tuple[str, list[Any]]:
        compiled = compile_filter(filter_string)
        parts = [compiled.sql]
        params: list[Any] = list(compiled.params)
        if run_id is not None:
            by_run = compile_clauses([Clause(ATTRIBUTE, "run_id", "=", str(run_id), f"run_id = {run_id!r}")])
            parts.append(f"({by_run.sql})")
            params.extend(by_run.params)
        if experiment_ids is not None:
            if isinstance(experiment_ids, str):
                experiment_ids = [experiment_ids]
            parts.append("t.experiment_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([str(item) for item in experiment_ids]))
        return " AND ".join(parts), params

    # --- crash recovery -------------------------------------------------------------------

    def recover_abandoned_traces(self) -> list[str]:
        """Mark ERROR the IN_PROGRESS traces whose writing process on this host is gone; return their ids.

        The reason goes into the trace's metadata under ``tui_eval.incomplete``.
        """
        host = socket.gethostname()
        rows = self._read(
            "look for unfinished traces",
            lambda c: c.execute(
                "SELECT trace_id, writer_pid, writer_started FROM traces "
                "WHERE state = 'IN_PROGRESS' AND writer_pid IS NOT NULL AND writer_host = ?",
                (host,),
            ).fetchall(),
        )
        # NOTE: traces begun on another host (a store on a shared drive) are never closed here,
        # because whether their writer still runs cannot be checked from this host.
        abandoned = [(trace_id, pid) for trace_id, pid, started in rows if not process_alive(pid, started)]
        if not abandoned:
            return []

        def close(connection: sqlite3.Connection) -> list[str]:
            closed = []
            for trace_id, pid in abandoned:
                row = connection.execute(
                    "SELECT info_json FROM traces WHERE trace_id = ? AND state = 'IN_PROGRESS' AND writer_pid = ?",
                    (trace_id, pid),
                ).fetchone()
                if row is None:
                    continue
                reason = f"the process writing this trace (pid {pid}) ended before the trace finished"
                info = json.loads(row[0])
                info["state"] = TraceState.ERROR.value
                info.setdefault("trace_metadata", {})[INCOMPLETE_KEY] = reason
                connection.execute(
                    "UPDATE traces SET state = ?, info_json = ?, writer_pid = NULL, writer_host = NULL, "
                    "writer_started = NULL WHERE trace_id = ?",
                    (TraceState.ERROR.value, dumps(info), trace_id),
                )
                connection.execute(
                    "INSERT OR REPLACE INTO trace_metadata (trace_id, key, value) VALUES (?, ?, ?)",
                    (trace_id, INCOMPLETE_KEY, reason),
                )
                closed.append(trace_id)
            return closed

        closed = self._write("close unfinished traces", close)
        for trace_id in closed:
            logger.warning("trace %s was left unfinished by a process that ended; marked ERROR", trace_id)
        return closed


# --- module helpers -----------------------------------------------------------------------

_INVALIDATE_BY_ID = (
    "UPDATE assessments SET valid = 0, assessment_json = json_set(assessment_json, '$.valid', json('false')) "
    "WHERE assessment_id = ?"
)
_RUN_SELECT = (
    "SELECT run_id, experiment_id, name, kind, status, start_time, end_time, params_json, metrics_json FROM runs"
)


def _run_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("run_id", "experiment_id", "name", "kind", "status", "start_time", "end_time")
    run = dict(zip(keys, row[:7]))
    run["params"] = json.loads(row[7])
    run["metrics"] = json.loads(row[8])
    return run


def _write_records(connection: sqlite3.Connection, records: list[TraceRecord]) -> None:
    """Replace each record's trace and child rows; assessments are merged by id.

    When a batch contains the same trace twice, the later copy wins, as separate writes would.
    """
    latest = {record.trace_row[0]: record for record in records}
    if len(latest) != len(records):
        records = list(latest.values())
    trace_ids = [(trace_id,) for trace_id in latest]
    connection.executemany("DELETE FROM spans WHERE trace_id = ?", trace_ids)
    connection.executemany("DELETE FROM trace_tags WHERE trace_id = ?", trace_ids)
    connection.executemany("DELETE FROM trace_metadata WHERE trace_id = ?", trace_ids)
    connection.executemany(_INSERT_TRACE, [record.trace_row for record in records])
    connection.executemany(_INSERT_SPAN, [row for record in records for row in record.span_rows])
    connection.executemany(_INSERT_TAG, [row for record in records for row in record.tag_rows])
    connection.executemany(_INSERT_METADATA, [row for record in records for row in record.metadata_rows])
    assessment_rows = [row for record in records for row in record.assessment_rows]
    if assessment_rows:
        connection.executemany(_UPSERT_ASSESSMENT, assessment_rows)


def _limit(value: int | None) -> int:
    if value is None:
        return -1
    if int(value) < 0:
        raise InvalidParameterError(f"invalid max_results {value!r}: pass a positive number or None for all")
    return int(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
