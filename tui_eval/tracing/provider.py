"""The active trace store, the active experiment and run, and the switch that turns tracing off.

The store location is, first match wins: `set_tracking_uri(...)`, the `TUI_EVAL_STORE`
environment variable, then `./tui_eval.db` in the working directory. The store is opened on
first use, once per process and location; after a fork the child opens its own connection.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tui_eval.errors import InvalidParameterError

if TYPE_CHECKING:
    from tui_eval.store import Store

logger = logging.getLogger(__name__)

SQLITE_SCHEME = "sqlite:///"
DEFAULT_EXPERIMENT_NAME = "Default"
# The id MLflow gives the Default experiment; used when the store cannot be reached.
DEFAULT_EXPERIMENT_ID = "0"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The experiment new traces are written to."""

    experiment_id: str
    name: str


_lock = threading.RLock()
_explicit_path: Path | None = None
_store: Store | None = None
_store_path: Path | None = None
_store_pid: int | None = None
_experiment_name: str | None = None
# Experiment ids resolved in the open store, by experiment name.
_experiment_ids: dict[str, str] = {}

_active_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tui_eval_active_run_id", default=None)
_tracing_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar("tui_eval_tracing_disabled", default=False)


# --- location -----------------------------------------------------------------------------


def path_from_uri(uri: str | os.PathLike[str]) -> Path:
    """Turn a store path or a ``sqlite:///`` URI into an absolute path.

    ``sqlite:///relative.db`` is relative to the working directory and ``sqlite:////abs.db``
    is absolute, as SQLAlchemy and MLflow read them.
    """
    if isinstance(uri, os.PathLike):
        return Path(os.path.abspath(os.fspath(uri)))
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidParameterError(
            f"invalid tracking URI {uri!r}: pass a store file path or a sqlite:/// URI"
        )
    text = uri.strip()
    if text.startswith(SQLITE_SCHEME):
        path_text = text[len(SQLITE_SCHEME):]
        if not path_text:
            raise InvalidParameterError(
                f"invalid tracking URI {uri!r}: it names no file; write sqlite:///traces.db"
            )
        return Path(os.path.abspath(os.path.expanduser(path_text)))
    if "://" in text or text.startswith("sqlite:"):
        raise InvalidParameterError(
            f"unsupported tracking URI {uri!r}: tui_eval stores traces in a SQLite file, "
            "so pass a file path or a sqlite:/// URI"
        )
    return Path(os.path.abspath(os.path.expanduser(text)))


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Write traces to the store at `uri` (a path or ``sqlite:///`` URI); None restores the default."""
    global _explicit_path
    path = None if uri is None else path_from_uri(uri)
    with _lock:
        _explicit_path = path
        _experiment_ids.clear()


def get_store_path() -> Path:
    """Return the path of the store traces go to now (explicit, environment, or working directory)."""
    if _explicit_path is not None:
        return _explicit_path
    from tui_eval.store import default_store_path

    return Path(os.path.abspath(default_store_path()))


def get_tracking_uri() -> str:
    """Return the active store as a ``sqlite:///`` URI with an absolute path."""
    return SQLITE_SCHEME + str(get_store_path())


def get_store() -> Store:
    """Return the active store, opening it on first use; raises StoreError when it cannot open."""
    global _store, _store_path, _store_pid
    path = get_store_path()
    pid = os.getpid()
    store = _store
    if store is not None and _store_path == path and _store_pid == pid:
        return store
    with _lock:
        if _store is not None and _store_path == path and _store_pid == pid:
            return _store
        from tui_eval.store import Store

        if _store_pid == pid and _store is not None:
            # NOTE: the previous store stays open: another thread may still be writing
            # through it. It closes when the last reference goes.
            logger.debug("Switching the trace store from %s to %s", _store_path, path)
        opened = Store(path)
        _store, _store_path, _store_pid = opened, path, pid
        _experiment_ids.clear()
        logger.debug("Opened the trace store %s", path)
        return opened


# --- experiment ---------------------------------------------------------------------------


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make `experiment_name` the experiment of new traces, creating it in the store if needed.

    `experiment_id` is accepted for MLflow compatibility when it names an experiment already
    resolved in this process.
    """
    global _experiment_name
    if experiment_name is None and experiment_id is None:
        raise InvalidParameterError("set_experiment needs an experiment name: set_experiment('my-app')")
    if experiment_name is None:
        with _lock:
            for name, known_id in _experiment_ids.items():
                if known_id == str(experiment_id):
                    _experiment_name = name
                    return Experiment(known_id, name)
        # NOTE: the store contract has no lookup by id, so only ids seen in this process resolve.
        raise InvalidParameterError(
            f"unknown experiment id {experiment_id!r}: pass the experiment's name instead"
        )
    if not isinstance(experiment_name, str) or not experiment_name.strip():
        raise InvalidParameterError(f"invalid experiment name {experiment_name!r}: pass a non-empty string")
    with _lock:
        store = get_store()
        resolved = str(store.get_or_create_experiment(experiment_name))
        _experiment_ids[experiment_name] = resolved
        _experiment_name = experiment_name
    return Experiment(resolved, experiment_name)


def get_active_experiment_id() -> str | None:
    """Return the id of the experiment chosen with `set_experiment`, or None when none was chosen."""
    if _experiment_name is None:
        return None
    return get_experiment_id()


def get_experiment_id() -> str:
    """Return the id of the experiment new traces go to (``Default`` unless one was set)."""
    name = _experiment_name or DEFAULT_EXPERIMENT_NAME
    store = get_store()
    known = _experiment_ids.get(name)
    if known is not None:
        return known
    with _lock:
        resolved = str(store.get_or_create_experiment(name))
        _experiment_ids[name] = resolved
        return resolved


# --- active run ---------------------------------------------------------------------------


@contextlib.contextmanager
def set_active_run(run_id: str | None) -> Iterator[None]:
    """Tag traces whose root span starts inside the block with metadata ``mlflow.sourceRun``.

    The run travels with the context, so code run through `contextvars.copy_context().run`
    and asyncio tasks created inside the block see it too.
    """
    token = _active_run_id.set(run_id)
    try:
        yield
    finally:
        _active_run_id.reset(token)


def get_active_run_id() -> str | None:
    return _active_run_id.get()


# --- on and off ---------------------------------------------------------------------------


@contextlib.contextmanager
def tracing_disabled() -> Iterator[None]:
    """Run the block without recording spans: traced functions run, and `start_span` yields a no-op span."""
    token = _tracing_disabled.set(True)
    try:
        yield
    finally:
        _tracing_disabled.reset(token)


def is_tracing_enabled() -> bool:
    return not _tracing_disabled.get()


def reset() -> None:
    """Forget the tracking URI, the experiment and the open store (for tests and embedding apps)."""
    global _explicit_path, _store, _store_path, _store_pid, _experiment_name
    with _lock:
        _explicit_path = None
        _store = None
        _store_path = None
        _store_pid = None
        _experiment_name = None
        _experiment_ids.clear()
