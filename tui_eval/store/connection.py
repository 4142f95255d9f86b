"""SQLite connections for the store: pragmas, SQL functions, and transactions that wait out locks.

Several processes share one store file (an app writing traces while the TUI reads them). WAL
mode lets readers run beside one writer; writers queue on ``BEGIN IMMEDIATE``. SQLite's busy
timeout covers most waits, but a few lock states return SQLITE_BUSY at once (a reader
upgrading, WAL recovery after a crash), so every transaction here also retries with backoff
until ``LOCK_WAIT_SECONDS`` have passed. Only then does a StoreError reach the caller.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from tui_eval.errors import StoreError

logger = logging.getLogger(__name__)

# How long one statement waits inside SQLite's busy handler, in milliseconds.
BUSY_TIMEOUT_MS = 5_000
# How long a transaction keeps retrying a busy database before it gives up, in seconds.
LOCK_WAIT_SECONDS = 120.0
# WAL pages (4 KiB each) written before a commit copies them into the database file (SQLite's
# default is 1,000). Each trace's commit rewrites about a dozen of the same pages, such as the
# table's last page and index leaves. A longer interval copies each of them once instead of
# many times, which makes single-trace writes faster (see tests/bench/bench_store.py).
WAL_AUTOCHECKPOINT_PAGES = 4_000

T = TypeVar("T")


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open ``path`` with the store's pragmas and SQL functions.

    The connection is in autocommit mode (``isolation_level=None``); transactions are opened
    explicitly by ``write_transaction``.
    """
    if read_only:
        uri = path.resolve().as_uri() + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Up to 64 MiB of page cache (SQLite's default is 2 MiB): writing thousands of rows into
    # indexes keyed by random ids touches pages all over the file.
    connection.execute("PRAGMA cache_size = -65536")
    register_functions(connection)
    return connection


def configure_for_writing(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL and set the per-connection write pragmas."""
    mode = retry_on_busy(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if str(mode).lower() != "wal":
        logger.warning("SQLite did not switch the store to WAL mode; it stays in %s mode", mode)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    connection.execute("PRAGMA foreign_keys = OFF")
    connection.execute("PRAGMA temp_store = MEMORY")


def register_functions(connection: sqlite3.Connection) -> None:
    """Register the functions the compiled filters call: REGEXP, case folding, attribute text."""
    connection.create_function("regexp", 2, _regexp, deterministic=True)
    connection.create_function("tui_eval_casefold", 1, _casefold, deterministic=True)
    connection.create_function("tui_eval_attribute_text", 1, attribute_text, deterministic=True)


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: object) -> int | None:
    if pattern is None or value is None:
        return None
    return 1 if _compiled(pattern).search(str(value)) else 0


def _casefold(value: object) -> str | None:
    if value is None:
        return None
    return str(value).casefold()


def attribute_text(value: object) -> object:
    """Return a stored span attribute as the text a filter compares against.

    Span attributes are stored as JSON text, so the string ``gpt-4o`` is stored with its
    quotes. A filter on ``span.attributes.model = 'gpt-4o'`` should match it, so a JSON
    string is unwrapped; every other value (numbers, objects) compares as its JSON text.
    """
    if isinstance(value, str) and value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


def _is_busy(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


def retry_on_busy(action: Callable[[], T], *, what: str = "access the store") -> T:
    """Run ``action``, retrying with backoff while SQLite reports the database busy or locked."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.002
    attempts = 0
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            attempts += 1
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"could not {what}: another process has held the store locked for more than "
                    f"{LOCK_WAIT_SECONDS:.0f} s ({error}). Close the other tui-eval process or retry."
                ) from error
            if attempts in (1, 50, 500):
                logger.debug("store busy on attempt %d (%s); retrying", attempts, error)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Hold a write transaction (BEGIN IMMEDIATE) for the body; commit on success, else roll back."""
    retry_on_busy(lambda: connection.execute("BEGIN IMMEDIATE"), what="start a write transaction")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    try:
        retry_on_busy(lambda: connection.execute("COMMIT"), what="commit a write transaction")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Hold a read transaction (one consistent snapshot) for the body."""
    retry_on_busy(lambda: connection.execute("BEGIN DEFERRED"), what="start a read transaction")
    try:
        yield connection
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
