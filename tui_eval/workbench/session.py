"""A workbench session: rescore a set of stored traces every time the scorer module is saved.

The session runs one background thread, the *loop*, which owns all of its state: the zygote
and worker processes, the running generation and the results. Other threads talk to it by
posting commands (``rescore``, ``set_visible``, a file change, ``stop``) through a queue and a
wake-up pipe. Events go to subscribers from a second thread, the *dispatcher*, so a slow
subscriber never holds up scoring.

A generation goes: module saved -> ``GenerationStarted`` -> the spare workers import the module
-> chunks of items are sent to them, visible traces first -> ``ResultsReceived`` batches ->
``GenerationFinished`` (or ``ReloadFailed`` / ``GenerationCancelled``) -> the cells are written
to the store by a writer process, off the loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import selectors
import signal
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_eval.entities.assessment import Feedback
from tui_eval.errors import InvalidParameterError, ScorerLoadError, StoreError
from tui_eval.workbench import protocol
from tui_eval.workbench.diff import DiffBuilder
from tui_eval.workbench.events import (
    FilesWatched,
    GenerationCancelled,
    GenerationFinished,
    GenerationStarted,
    ReloadFailed,
    ResultsReceived,
    ResultsRestored,
    Subscribers,
    WorkbenchEvent,
    WorkerOutput,
)
from tui_eval.workbench.processes import WorkerHandle, ZygoteProcess
from tui_eval.workbench.results import (
    CRASH_ERROR_CODE,
    TIMEOUT_ERROR_CODE,
    Cell,
    OverlayResults,
    ResultTable,
    ValueCollector,
    error_cell,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_IMPORT_TIMEOUT_S = 60.0
# User output lines published per generation; the rest are counted and reported in one line.
DEFAULT_MAX_OUTPUT_LINES = 10_000
# Items per chunk: visible traces go out in small chunks so they come back first.
VISIBLE_CHUNK = 64
MIN_CHUNK = 16
MAX_CHUNK = 1000
# A generation uses one more worker per this many traces, up to ``workers``.
ITEMS_PER_EXTRA_WORKER = 50
# Chunks sent ahead to each worker, so it rarely waits for the next one.
CHUNKS_IN_FLIGHT = 2
# How often the loop checks the per-call timeout while a generation runs, in seconds.
WATCHDOG_INTERVAL_S = 0.05
# How long to wait for the zygote's report of how a worker ended before naming the cell without it.
EXIT_REPORT_WAIT_S = 0.5
# Deaths outside any scorer call a generation tolerates before it gives up on the remaining items.
MAX_UNEXPLAINED_DEATHS = 3
# How often in a row the zygote may die before loading its traces and be restarted.
MAX_ZYGOTE_RESTARTS = 3


def _none_names_by_trace(table: ResultTable) -> dict[str, tuple[str, ...]]:
    """Map each trace with a scorer that returned None to those scorers' names."""
    names = {}
    for trace_id in table:
        none_names = table.none_names(trace_id)
        if none_names:
            names[trace_id] = none_names
    return names


def default_worker_count() -> int:
    """Workers per generation: one per CPU core this process may use, at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on this platform
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def default_memory_limit_mb() -> int | None:
    """Half the physical memory, the default extra address space a worker may allocate."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return max(256, total // (2 * 1024 * 1024))


@dataclass(eq=False)
class _Generation:
    """The loop's record of one generation while it runs."""

    number: int
    module_path: Path
    module_hash: str
    fingerprint: str
    reason: str
    started: float
    total: int
    pending: deque[int]
    table: ResultTable
    workers: list[WorkerHandle] = field(default_factory=list)
    scorers: list[dict[str, Any]] | None = None
    skips: dict[int, set[int]] = field(default_factory=dict)
    failed_cells: dict[int, list[Cell]] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    done: int = 0
    state: str = "loading"  # loading -> scoring -> aggregating -> finished; or failed, cancelled
    next_chunk_id: int = 0
    output_lines: int = 0
    dropped_lines: int = 0
    unexplained_deaths: int = 0
    first_results: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    worker_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    collector: ValueCollector = field(default_factory=ValueCollector)
    differ: DiffBuilder | None = None
    recount: bool = False

    @property
    def active(self) -> bool:
        return self.state in ("loading", "scoring", "aggregating")

    @property
    def scorer_names(self) -> tuple[str, ...]:
        return tuple(item["name"] for item in self.scorers or ())


class Session:
    """Rescore the traces of a store with a scorer module, on start and on every save.

    ``run_id`` and ``filter_string`` (MLflow's grammar) choose the traces. ``timeout`` bounds
    each scorer call in seconds and ``import_timeout`` the module's import. ``workers`` is the
    number of processes a generation may use (default: one per core, at most four).
    ``memory_limit_mb`` is the extra address space a worker may take before allocations raise
    MemoryError (default: half the physical memory; 0 for no limit). With ``watch=False`` the
    session scores once per ``start``/``rescore`` and never watches files; with
    ``write_results=False`` nothing is written to the store.

    Events reach ``subscribe``d callbacks on a background thread (see ``events``).
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        scorer_path: str | os.PathLike[str],
        *,
        run_id: str | None = None,
        filter_string: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        workers: int | None = None,
        watch: bool = True,
        import_timeout: float = DEFAULT_IMPORT_TIMEOUT_S,
        memory_limit_mb: int | None = None,
        max_output_lines: int = DEFAULT_MAX_OUTPUT_LINES,
        write_results: bool = True,
        debounce_ms: float = 50.0,
        settle_ms: float = 500.0,
    ):
        if timeout <= 0:
            raise InvalidParameterError(f"invalid timeout {timeout!r}: pass a number of seconds above 0")
        if workers is not None and workers < 1:
            raise InvalidParameterError(f"invalid workers {workers!r}: pass 1 or more")
        self.store_path = Path(store_path).expanduser().absolute()
        self.scorer_path = Path(os.path.abspath(os.path.expanduser(scorer_path)))
        self.run_id = run_id
        self.filter_string = filter_string
        self.timeout = float(timeout)
        self.import_timeout = float(import_timeout)
        self.workers = workers or default_worker_count()
        self.watch = watch
        if memory_limit_mb is None:
            memory_limit_mb = default_memory_limit_mb()
        self.memory_limit_mb = memory_limit_mb or None
        self.max_output_lines = max_output_lines
        self.write_results = write_results
        self._debounce_ms = debounce_ms
        self._settle_ms = settle_ms

        self._subscribers = Subscribers()
        self._events: queue.SimpleQueue[WorkbenchEvent | None] = queue.SimpleQueue()
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        self._wake_closed = False
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector = selectors.DefaultSelector()
        self._loop_thread: threading.Thread | None = None
        self._dispatch_thread: threading.Thread | None = None
        self._watcher: Any = None
        self._started = False
        self._stopping = False
        self._stop_deadline = 0.0
        self._idle = threading.Event()
        self._warm = threading.Event()
        # Generation requests (saves and rescore calls) posted and handled: while they differ,
        # a newer generation is on its way.
        self._requests_lock = threading.Lock()
        self._requests_posted = 0
        self._requests_handled = 0

        # Loop-owned state.
        self._zygote: ZygoteProcess | None = None
        self._zygote_restarts = 0
        self._trace_ids: list[str] = []
        self._index_of: dict[str, int] = {}
        self._traces_loaded = False
        self._start_request: str | None = None
        self._visible: list[int] = []
        self._visible_ids: list[str] = []
        self._handles: dict[int, WorkerHandle] = {}
        self._by_pid: dict[int, WorkerHandle] = {}
        self._next_key = 0
        self._spares: list[WorkerHandle] = []
        self._current: _Generation | None = None
        self._next_generation = 1
        self._last_started = 0
        self._final_table: ResultTable | None = None
        self._final_metrics: dict[str, float] = {}
        self._final_counts: dict[str, dict[str, int]] = {}
        self._final_scorers: tuple[str, ...] = ()
        self._last_good_fingerprint: str | None = None
        self._stale = False
        self._last_error: ReloadFailed | None = None
        self._fatal_error: str | None = None
        self._tracked_files: set[Path] = {self.scorer_path}
        # Store writes: the rows in the store, oldest first, as ("ids", [...]) or ("generated", token, generation, count).
        self._token = os.urandom(6).hex()
        self._stored_rows: list[tuple[Any, ...]] = []
        self._stored_names: set[str] = set()
        self._pending_write: _Generation | None = None
        self._write_thread: threading.Thread | None = None
        self._writes_idle = threading.Event()
        self._writes_idle.set()

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote, the first generation and (unless ``watch=False``) the file watcher.

        Raises ``ScorerLoadError`` if the scorer module does not exist and ``StoreError`` if the
        store does not; a filter the store cannot parse raises ``FilterError``.
        """
        if self._started:
            return
        if not self.scorer_path.is_file():
            raise ScorerLoadError(
                f"scorer module {self.scorer_path} not found: pass the path of a Python file that defines scorers"
            )
        if not self.store_path.is_file():
            raise StoreError(
                f"store {self.store_path} not found: generate or import traces first, or pass --store PATH"
            )
        from tui_eval.store import Store

        # NOTE: the trace set is listed once, here; traces stored later join only a new session.
        with Store(self.store_path) as store:
            trace_ids = store.search_trace_ids(filter_string=self.filter_string, run_id=self.run_id)
        self._trace_ids = trace_ids
        self._started = True
        self._start_request = "start"
        self._zygote = self._spawn_zygote()

        self._dispatch_thread = threading.Thread(target=self._dispatch_loop, name="tui_eval-events", daemon=True)
        self._dispatch_thread.start()
        self._loop_thread = threading.Thread(target=self._loop, name="tui_eval-workbench", daemon=True)
        self._loop_thread.start()
        if self.watch:
            from tui_eval.workbench.watcher import ModuleWatcher

            self._watcher = ModuleWatcher(
                self._tracked_files,
                self._on_files_changed,
                ignored_paths=[self.store_path],
                quiet_ms=self._debounce_ms,
                settle_ms=self._settle_ms,
            )
            self._watcher.start()
        self._publish(FilesWatched(self.watched_files, self._watched_directories()))
        logger.info("workbench session started on %s with %d traces", self.scorer_path, len(trace_ids))

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the running generation, end the workers and the zygote, and wait for store writes.

        Waits at most ``timeout`` seconds for the scores to be written. A write still running
        then goes on in its own process and ends by itself; a write not yet started is dropped.
        """
        if not self._started or self._stopping:
            return
        if self._watcher is not None:
            self._watcher.stop()
        self._stop_deadline = time.monotonic() + timeout
        self._post(("stop",))
        if self._loop_thread is not None:
            self._loop_thread.join(timeout + 5.0)
        self._events.put(None)
        if self._dispatch_thread is not None and self._dispatch_thread is not threading.current_thread():
            self._dispatch_thread.join(5.0)
        self._wake_closed = True
        os.close(self._wake_read)
        os.close(self._wake_write)
        logger.info("workbench session on %s stopped", self.scorer_path)

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def rescore(self) -> None:
        """Start a new generation now, even if no file changed."""
        self._post_request(("rescore",))

    def set_visible(self, trace_ids: Iterable[str]) -> None:
        """Score these traces first, in this order, in the running and in later generations."""
        self._post(("visible", list(trace_ids)))

    def subscribe(self, callback: Callable[[WorkbenchEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, on the dispatcher thread; returns a function that unsubscribes."""
        return self._subscribers.add(callback)

    @property
    def results(self) -> Mapping[str, list[Feedback]]:
        """The latest score of every trace: the running generation's where it has one, else the last finished one's."""
        current = self._current
        return OverlayResults(current.table if current is not None and current.active else None, self._final_table)

    @property
    def finished_results(self) -> ResultTable | None:
        """The last finished (or restored) generation's results as compact cells, or None."""
        return self._final_table

    @property
    def generation(self) -> int:
        """The number of the newest generation started (0 before the first)."""
        return self._last_started

    @property
    def finished_generation(self) -> int | None:
        """The generation whose results are the last finished ones (restored ones count), or None."""
        table = self._final_table
        return table.generation if table is not None else None

    @property
    def zygote_pid(self) -> int | None:
        """The pid of the zygote process that forks the workers, for diagnostics (None when stopped)."""
        zygote = self._zygote
        return zygote.pid if zygote is not None else None

    @property
    def watched_files(self) -> list[Path]:
        """The scorer module and the user modules it imported, whose changes start a generation."""
        return sorted(self._tracked_files)

    @property
    def stale(self) -> bool:
        """Whether the results shown come from an older module, because the newest one failed to load."""
        return self._stale

    @property
    def last_error(self) -> ReloadFailed | None:
        """The load error of the newest generation, cleared when a generation finishes."""
        return self._last_error

    @property
    def error(self) -> str | None:
        """Why the session cannot score at all (the store could not be read), or None."""
        return self._fatal_error

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self._final_metrics)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {name: dict(bucket) for name, bucket in self._final_counts.items()}

    @property
    def scorer_names(self) -> tuple[str, ...]:
        """The scorers of the last finished generation."""
        return self._final_scorers

    @property
    def trace_ids(self) -> list[str]:
        """The session's traces, in the store's order (newest first)."""
        return list(self._trace_ids)

    def wait_idle(self, timeout: float | None = None, *, include_writes: bool = False) -> bool:
        """Wait until no generation runs or is about to; with ``include_writes``, also until the store is written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._idle.wait(timeout):
            return False
        if include_writes:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self._writes_idle.wait(remaining)
        return True

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait until the zygote has built every trace's Trace object, after which scorers taking
        ``trace`` pay nothing to get it (before, each worker builds the ones it needs)."""
        return self._warm.wait(timeout)

    # -- cross-thread plumbing --------------------------------------------------------------

    def _post(self, command: tuple[Any, ...]) -> None:
        self._commands.put(command)
        if self._wake_closed:
            return
        try:
            os.write(self._wake_write, b"x")
        except (BlockingIOError, OSError):
            pass  # The pipe is full, so the loop is awake anyway; or the session is stopped.

    def _publish(self, event: WorkbenchEvent) -> None:
        self._events.put(event)

    def _dispatch_loop(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            self._subscribers.publish(event)

    def _on_files_changed(self, paths: list[Path]) -> None:
        self._post_request(("change", paths))

    def _post_request(self, command: tuple[Any, ...]) -> None:
        with self._requests_lock:
            self._requests_posted += 1
        self._idle.clear()
        self._post(command)

    def _watched_directories(self) -> tuple[Path, ...]:
        if self._watcher is not None:
            return self._watcher.directories
        return tuple(sorted({path.parent for path in self._tracked_files}))

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._on_wake)
        try:
            self._configure_zygote()
            # Import what the first generation's end needs (aggregation imports pydantic and numpy)
            # while the zygote loads the traces, not while the user waits for scores.
            import numpy  # noqa: F401

            import tui_eval.genai.aggregation  # noqa: F401
            while True:
                for key, _mask in self._selector.select(self._select_timeout()):
                    key.data(key.fileobj)
                self._check_timeouts()
                self._process_overdue_deaths()
                if self._stopping and self._ready_to_exit():
                    break
                self._update_idle()
        except Exception as exc:
            logger.exception("the workbench loop failed; the session stops scoring")
            self._fatal_error = f"the workbench stopped after an internal error: {type(exc).__name__}: {exc}"
            self._publish(ReloadFailed(self._last_started, None, None, self._fatal_error, ""))
        finally:
            self._shutdown()

    def _select_timeout(self) -> float | None:
        timeouts = []
        current = self._current
        if current is not None and current.active:
            timeouts.append(WATCHDOG_INTERVAL_S)
        for handle in self._handles.values():
            if handle.death_deadline is not None:
                timeouts.append(max(0.0, handle.death_deadline - time.monotonic()))
        if self._stopping:
            timeouts.append(0.05)
        return min(timeouts) if timeouts else None

    def _update_idle(self) -> None:
        current = self._current
        busy = (
            not self._traces_loaded
            or self._start_request is not None
            or (current is not None and current.active)
            or self._requests_posted != self._requests_handled
        )
        if self._fatal_error is not None or not busy:
            self._idle.set()
        else:
            self._idle.clear()

    def _on_wake(self, _fileobj: Any) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._handle_command(command)

    def _handle_command(self, command: tuple[Any, ...]) -> None:
        kind = command[0]
        if kind in ("change", "rescore"):
            with self._requests_lock:
                self._requests_handled += 1
        if kind == "change":
            if self._stopping:
                return
            self._request_generation("change", changed=command[1])
        elif kind == "rescore":
            if not self._stopping:
                self._request_generation("rescore")
        elif kind == "visible":
            self._set_visible(command[1])
        elif kind == "write_done":
            self._on_write_done(*command[1:])
        elif kind == "stop":
            self._begin_stop()

    # -- zygote -----------------------------------------------------------------------------

    def _spawn_zygote(self) -> ZygoteProcess:
        zygote = ZygoteProcess()
        logger.debug("zygote started as pid %d", zygote.pid)
        return zygote

    def _configure_zygote(self) -> None:
        zygote = self._zygote
        assert zygote is not None
        self._selector.register(zygote.data, selectors.EVENT_READ, self._on_zygote_readable)
        self._selector.register(zygote.stderr_fd, selectors.EVENT_READ, self._on_zygote_stderr)
        try:
            zygote.configure(
                {
                    "store_path": str(self.store_path),
                    "trace_ids": self._trace_ids,
                    "log_level": logging.getLogger("tui_eval").getEffectiveLevel(),
                }
            )
        except OSError:
            # It died before reading its configuration; its end of file on the data connection
            # reaches _on_zygote_died, which starts another.
            logger.warning("the workbench zygote (pid %d) ended before it was configured", zygote.pid)

    def _on_zygote_stderr(self, _fileobj: Any) -> None:
        zygote = self._zygote
        if zygote is None:
            return
        lines = zygote.read_stderr()
        if lines is None:
            self._selector.unregister(zygote.stderr_fd)
            return
        for line in lines:
            logger.warning("workbench zygote: %s", line)

    def _on_zygote_readable(self, _fileobj: Any) -> None:
        zygote = self._zygote
        assert zygote is not None
        while True:
            try:
                message = zygote.data.recv()
            except (EOFError, OSError):
                self._on_zygote_died()
                return
            self._on_zygote_message(message)
            try:
                if not zygote.data.poll(0):
                    return
            except (EOFError, OSError):
                self._on_zygote_died()
                return

    def _on_zygote_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == protocol.MSG_TRACES_LOADED:
            self._on_traces_loaded(message[1])
        elif kind == protocol.MSG_TRACES_FAILED:
            self._fatal_error = f"cannot load the traces of {self.store_path}: {message[1]}"
            logger.error("%s", self._fatal_error)
            self._publish(ReloadFailed(0, self.store_path, None, self._fatal_error, ""))
            self._start_request = None
            self._idle.set()
        elif kind == protocol.MSG_TRACES_BUILT:
            logger.debug("zygote built every Trace object in %.2f s", message[1])
            self._warm.set()
        elif kind == protocol.MSG_FORKED:
            handle = self._handles.get(message[1])
            if handle is not None:
                handle.pid = message[2]
                self._by_pid[message[2]] = handle
        elif kind == protocol.MSG_FORK_FAILED:
            logger.error("the zygote could not start a worker: %s", message[2])
            handle = self._handles.get(message[1])
            if handle is not None:
                handle.exit_description = message[2]
                self._on_worker_gone(handle)
        elif kind == protocol.MSG_EXITED:
            handle = self._by_pid.pop(message[1], None)
            if handle is not None:
                handle.exit_description = message[2]
                handle.reaped = True
                if handle.death_deadline is not None:
                    self._process_death(handle)

    def _on_zygote_died(self) -> None:
        zygote = self._zygote
        if zygote is None:
            return
        for fileobj in (zygote.data, zygote.stderr_fd):
            try:
                self._selector.unregister(fileobj)
            except (KeyError, ValueError):
                pass
        zygote.close()
        self._zygote = None
        if self._stopping:
            return
        logger.error("the workbench zygote (pid %d) died", zygote.pid)
        for handle in list(self._handles.values()):
            if handle.role == protocol.ROLE_WORKER:
                self._kill_worker(handle)
        self._spares.clear()
        current = self._current
        if current is not None and current.active:
            self._cancel(current)
            self._start_request = current.reason
        if self._zygote_restarts >= MAX_ZYGOTE_RESTARTS:
            self._fatal_error = "the workbench zygote keeps dying; restart the session"
            self._publish(ReloadFailed(0, None, None, self._fatal_error, ""))
            return
        self._zygote_restarts += 1
        self._traces_loaded = False
        if self._start_request is None:
            self._start_request = "rescore"
        self._zygote = self._spawn_zygote()
        self._configure_zygote()

    def _on_traces_loaded(self, info: dict[str, Any]) -> None:
        # A zygote that got this far is healthy: only deaths before loading count as a crash loop.
        self._zygote_restarts = 0
        self._trace_ids = info["trace_ids"]
        self._index_of = {trace_id: index for index, trace_id in enumerate(self._trace_ids)}
        self._visible = [self._index_of[trace_id] for trace_id in self._visible_ids if trace_id in self._index_of]
        self._traces_loaded = True
        if not self._trace_ids:
            self._warm.set()
        if info.get("missing"):
            logger.warning("%d traces were deleted from the store before they could be loaded", info["missing"])
        logger.debug("zygote loaded %d traces in %.2f s", len(self._trace_ids), info["load_s"])
        if not self._stored_rows:
            self._stored_rows = [("ids", info["stale_ids"]), ("ids", info["restored_ids"])]
        restored = info["restored"]
        if restored and self._final_table is None:
            generation = info["restored_generation"]
            table = ResultTable(generation, info["restored_module_hash"])
            restored_none = info.get("restored_none") or {}
            for trace_id, cells in restored.items():
                table.add(trace_id, cells, restored_none.get(trace_id, ()))
            values, counts = table.collect_values()
            from tui_eval.genai.aggregation import aggregate_values

            metrics = aggregate_values([], values)
            self._final_table = table
            self._final_metrics = metrics
            self._final_counts = counts
            self._final_scorers = tuple(table.scorer_names())
            self._stored_names = set(table.assessment_names())
            self._next_generation = max(self._next_generation, generation + 1)
            self._publish(ResultsRestored(generation, table, metrics, counts, info["restored_module_hash"] or ""))
        self._replenish_spares()
        if self._pending_write is not None and self._write_thread is None:
            self._start_write()
        if self._start_request is not None and not self._stopping:
            reason = self._start_request
            self._start_request = None
            self._start_generation(reason)

    # -- workers ----------------------------------------------------------------------------

    def _new_handle(self, role: str = protocol.ROLE_WORKER) -> WorkerHandle:
        zygote = self._zygote
        assert zygote is not None
        self._next_key += 1
        handle = WorkerHandle(self._next_key, role)
        self._handles[handle.key] = handle
        try:
            zygote.fork(handle.key, role, handle.child_fds)
        except OSError as error:
            # The zygote died and its end of file on the data connection is still queued;
            # _on_zygote_died restarts it and reruns the generation this worker was for.
            logger.warning("the workbench zygote (pid %d) did not take a fork request: %s", zygote.pid, error)
            handle.close()
            handle.state = "dead"
            self._handles.pop(handle.key, None)
            return handle
        finally:
            handle.close_child_fds()
        if role == protocol.ROLE_WORKER:
            self._selector.register(
                handle.connection_fd, selectors.EVENT_READ, lambda _f, h=handle: self._on_worker_readable(h)
            )
        for fd in handle.output_fds:
            self._selector.register(fd, selectors.EVENT_READ, lambda f, h=handle: self._on_worker_output(h, f))
        return handle

    def _kill_worker(self, handle: WorkerHandle, reason: str | None = None) -> None:
        """Kill a worker; ``reason`` names why, for the cell it was on."""
        if handle.pid is not None:
            handle.kill(reason)
            return
        # No pid yet: closing the connection makes the child exit at its first read.
        if reason is not None and handle.kill_reason is None:
            handle.kill_reason = reason
        if not handle.connection_closed:
            self._on_worker_eof(handle)

    def _replenish_spares(self) -> None:
        if self._zygote is None or self._stopping or not self._traces_loaded:
            return
        while len(self._spares) < self.workers:
            self._spares.append(self._new_handle())

    def _take_worker(self) -> WorkerHandle:
        while self._spares:
            handle = self._spares.pop(0)
            if handle.state in ("forking", "spare") and not handle.connection_closed:
                return handle
        return self._new_handle()

    def _assign_worker(self, run: _Generation) -> None:
        handle = self._take_worker()
        handle.run = run
        run.workers.append(handle)
        if handle.state == "spare":
            self._send_run(handle)

    def _send_run(self, handle: WorkerHandle) -> None:
        run = handle.run
        handle.state = "running"
        spec = {
            "generation": run.number,
            "module_path": str(run.module_path),
            "memory_limit_bytes": self.memory_limit_mb * 1024 * 1024 if self.memory_limit_mb else None,
        }
        if not handle.send((protocol.MSG_RUN, spec)):
            self._kill_worker(handle)

    def _on_worker_readable(self, handle: WorkerHandle) -> None:
        while not handle.connection_closed:
            try:
                message = handle.connection.recv()
            except (EOFError, OSError):
                self._on_worker_eof(handle)
                return
            self._on_worker_message(handle, message)
            if handle.connection_closed:
                return
            try:
                if not handle.connection.poll(0):
                    return
            except (EOFError, OSError):
                self._on_worker_eof(handle)
                return

    def _on_worker_output(self, handle: WorkerHandle, fd: int) -> None:
        stream = handle.output_fds.get(fd, "stdout")
        lines = handle.read_output(fd)
        if fd not in handle.output_fds:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            self._maybe_forget(handle)
        if not lines:
            return
        run = handle.run
        if handle.role == protocol.ROLE_WRITER or run is None:
            for line in lines:
                logger.warning("workbench %s %s: %s", handle.role, stream, line)
            return
        if run.state in ("cancelled",):
            return
        for line in lines:
            if run.output_lines < self.max_output_lines:
                run.output_lines += 1
                self._publish(WorkerOutput(run.number, stream, line))
            else:
                run.dropped_lines += 1

    def _on_worker_eof(self, handle: WorkerHandle) -> None:
        try:
            self._selector.unregister(handle.connection_fd)
        except (KeyError, ValueError):
            pass
        handle.close_connection()
        self._on_worker_gone(handle)

    def _on_worker_gone(self, handle: WorkerHandle) -> None:
        """Handle a closed worker connection: account for the death now, or once the zygote reports how it ended."""
        if handle in self._spares:
            self._spares.remove(handle)
        run = handle.run
        needs_cause = (
            run is not None
            and run.active
            and handle.state == "running"
            and handle.kill_reason is None
            and handle.exit_description is None
        )
        if needs_cause:
            handle.death_deadline = time.monotonic() + EXIT_REPORT_WAIT_S
            return
        self._process_death(handle)

    def _process_overdue_deaths(self) -> None:
        now = time.monotonic()
        for handle in list(self._handles.values()):
            if handle.death_deadline is not None and now >= handle.death_deadline:
                self._process_death(handle)

    def _process_death(self, handle: WorkerHandle) -> None:
        handle.death_deadline = None
        was_running = handle.state == "running"
        handle.state = "dead"
        if handle.pid is not None and handle.role == protocol.ROLE_WORKER:
            # Processes the user's code started outlive the worker in its process group; end
            # them. The group id cannot be reused while any of them lives.
            try:
                os.killpg(handle.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self._account_for_death(handle, was_running)
        finally:
            self._maybe_forget(handle)

    def _account_for_death(self, handle: WorkerHandle, was_running: bool) -> None:
        run = handle.run
        if run is None or not run.active or not was_running:
            return
        if handle in run.workers:
            run.workers.remove(handle)
        cause = handle.exit_description or "an unknown cause"
        if not handle.loaded:
            if run.state == "loading" and not run.workers:
                message = handle.kill_reason or f"the worker process ended ({cause}) while importing the module"
                self._fail(run, {"path": str(run.module_path), "line": None, "message": message, "traceback": message, "files": []})
            elif run.state == "scoring" and not any(worker.loaded for worker in run.workers) and run.pending:
                self._assign_worker(run)
            return

        # A worker that died while writing its record leaves it torn: then no call is blamed.
        sequence, item, scorer, _started = handle.progress.read() or (0, 0, 0, 0.0)
        in_call = sequence % 2 == 1
        if in_call and item >= 0 and run.scorers is not None and 0 <= scorer < len(run.scorers):
            name = run.scorers[scorer]["name"]
            if handle.kill_reason is not None:
                code, message = TIMEOUT_ERROR_CODE, handle.kill_reason
            else:
                code, message = CRASH_ERROR_CODE, f"the worker process ended ({cause}) while running this scorer"
            run.failed_cells.setdefault(item, []).append(error_cell(name, code, message))
            run.skips.setdefault(item, set()).add(scorer)
            logger.info("generation %d: scorer %s on trace %s: %s", run.number, name, self._trace_ids[item], message)
        elif in_call and item == protocol.STAGE_AGGREGATE:
            logger.warning("generation %d: the scorers' aggregation functions failed (%s)", run.number, cause)
            self._finish(run)
            return
        else:
            run.unexplained_deaths += 1
            logger.warning("generation %d: a worker ended between scorer calls (%s)", run.number, cause)

        remaining: list[int] = []
        for chunk_id in sorted(handle.inflight):
            remaining.extend(handle.inflight[chunk_id])
        handle.inflight.clear()
        run.pending.extendleft(reversed(remaining))
        if run.unexplained_deaths > MAX_UNEXPLAINED_DEATHS:
            self._give_up_remaining(run, cause)
            return
        if run.state == "scoring" and run.pending:
            self._assign_worker(run)
            self._dispatch(run)
        self._check_complete(run)

    def _give_up_remaining(self, run: _Generation, cause: str) -> None:
        message = f"not scored: worker processes kept ending ({cause})"
        while run.pending:
            index = run.pending.popleft()
            cells = [error_cell(item["name"], CRASH_ERROR_CODE, message) for item in run.scorers or ()]
            self._add_row(run, index, cells)
        self._check_complete(run)

    def _maybe_forget(self, handle: WorkerHandle) -> None:
        if handle.state == "dead" and handle.connection_closed and not handle.output_fds:
            handle.close()
            self._handles.pop(handle.key, None)
            if handle.pid is not None and self._by_pid.get(handle.pid) is handle:
                # The zygote's exit report may still come; keep the pid mapping until then.
                pass

    def _check_timeouts(self) -> None:
        run = self._current
        if run is None or not run.active:
            return
        now = time.monotonic()
        for handle in run.workers:
            if handle.state != "running" or handle.kill_reason is not None or handle.pid is None:
                continue
            snapshot = handle.progress.read()
            if snapshot is None:
                continue  # being written; the next look reads it
            sequence, item, _scorer, started = snapshot
            if sequence % 2 == 0:
                continue
            if item == protocol.STAGE_IMPORT:
                if now - started > self.import_timeout:
                    self._kill_worker(handle, f"importing the module timed out after {self.import_timeout:g} s")
            elif now - started > self.timeout:
                self._kill_worker(handle, f"timed out after {self.timeout:g} s")

    # -- generations ------------------------------------------------------------------------

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self._tracked_files):
            digest.update(str(path).encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing")
        return digest.hexdigest()

    def _request_generation(self, reason: str, changed: list[Path] | None = None) -> None:
        if not self._traces_loaded or self._zygote is None:
            self._start_request = reason
            return
        if reason == "change":
            fingerprint = self._fingerprint()
            current = self._current
            same_as_running = current is not None and current.active and current.fingerprint == fingerprint
            # After a failed reload, restoring the last good files must still run a generation,
            # because that is what clears the error.
            same_as_finished = (
                (current is None or not current.active)
                and self._last_error is None
                and fingerprint == self._last_good_fingerprint
            )
            if same_as_running or same_as_finished:
                logger.debug("ignoring a save that changed nothing: %s", ", ".join(map(str, changed or ())))
                return
        self._start_generation(reason)

    def _start_generation(self, reason: str) -> None:
        current = self._current
        if current is not None and current.active:
            self._cancel(current)
        number = self._next_generation
        self._next_generation += 1
        self._last_started = number
        try:
            source = self.scorer_path.read_bytes()
        except OSError as exc:
            message = f"cannot read the scorer module {self.scorer_path}: {exc.strerror or exc}"
            event = ReloadFailed(number, self.scorer_path, None, message, message)
            self._publish(GenerationStarted(number, self.scorer_path, len(self._trace_ids), "", reason))
            self._mark_failed(event, [])
            return
        module_hash = hashlib.sha256(source).hexdigest()
        run = _Generation(
            number=number,
            module_path=self.scorer_path,
            module_hash=module_hash,
            fingerprint=self._fingerprint(),
            reason=reason,
            started=time.monotonic(),
            total=len(self._trace_ids),
            pending=deque(self._ordered_indexes()),
            table=ResultTable(number, module_hash, create_time_ms=time.time_ns() // 1_000_000),
            differ=DiffBuilder(self._final_table),
        )
        self._current = run
        self._publish(GenerationStarted(number, self.scorer_path, run.total, module_hash, reason))
        logger.debug("generation %d started (%s)", number, reason)
        wanted = max(1, min(self.workers, -(-run.total // ITEMS_PER_EXTRA_WORKER)))
        for _ in range(wanted):
            self._assign_worker(run)

    def _ordered_indexes(self) -> list[int]:
        visible = [index for index in dict.fromkeys(self._visible) if 0 <= index < len(self._trace_ids)]
        seen = set(visible)
        return visible + [index for index in range(len(self._trace_ids)) if index not in seen]

    def _set_visible(self, trace_ids: list[str]) -> None:
        self._visible_ids = trace_ids
        self._visible = [self._index_of[trace_id] for trace_id in trace_ids if trace_id in self._index_of]
        run = self._current
        if run is None or run.state not in ("loading", "scoring") or not self._visible:
            return
        waiting = set(run.pending)
        front = [index for index in dict.fromkeys(self._visible) if index in waiting]
        if not front:
            return
        moved = set(front)
        run.pending = deque(front + [index for index in run.pending if index not in moved])

    def _on_worker_message(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        kind = message[0]
        run = handle.run
        if kind == protocol.MSG_HELLO:
            handle.pid = message[1]
            self._by_pid[handle.pid] = handle
            if run is None:
                handle.state = "spare"
            elif run.active:
                handle.state = "spare"
                self._send_run(handle)
            else:
                self._kill_worker(handle)
            return
        if run is None or not run.active or run is not self._current:
            return
        if kind == protocol.MSG_LOADED:
            self._on_loaded(run, handle, message[1])
        elif kind == protocol.MSG_LOAD_FAILED:
            handle.state = "exiting"
            if run.state == "loading" and not any(worker.loaded for worker in run.workers):
                self._fail(run, message[1])
        elif kind == protocol.MSG_RESULTS:
            wall, cpu = message[4]
            run.worker_seconds += wall
            run.worker_cpu_seconds += cpu
            self._on_results(run, handle, message[1], message[2], message[3], message[5])
        elif kind == protocol.MSG_FILES:
            run.files.update(message[1])
            self._track_files(run.files, replace=False)
        elif kind == protocol.MSG_AGGREGATED:
            if run.state == "aggregating":
                run.metrics.update(message[1])
                self._finish(run)

    def _on_loaded(self, run: _Generation, handle: WorkerHandle, info: dict[str, Any]) -> None:
        handle.loaded = True
        run.files.update(info["files"])
        if run.scorers is None:
            run.scorers = info["scorers"]
            logger.debug(
                "generation %d imported in %.3f s: scorers %s", run.number, info["import_s"], ", ".join(run.scorer_names)
            )
        if run.state == "loading":
            run.state = "scoring"
            self._track_files(run.files, replace=True)
        if not run.scorers or run.total == 0:
            while run.pending:
                self._add_row(run, run.pending.popleft(), [])
            self._check_complete(run)
            return
        self._dispatch(run)

    def _dispatch(self, run: _Generation) -> None:
        if run.state != "scoring":
            return
        chunk_size = max(MIN_CHUNK, min(MAX_CHUNK, run.total // max(1, len(run.workers) * 8)))
        visible = set(self._visible)
        for handle in run.workers:
            if not handle.loaded or handle.state != "running" or handle.kill_reason is not None:
                continue
            while len(handle.inflight) < CHUNKS_IN_FLIGHT and run.pending:
                indexes: list[int] = []
                limit = VISIBLE_CHUNK if run.pending[0] in visible else chunk_size
                while run.pending and len(indexes) < limit:
                    index = run.pending[0]
                    if indexes and (index in visible) != (indexes[0] in visible):
                        break
                    indexes.append(run.pending.popleft())
                skips = {index: sorted(run.skips[index]) for index in indexes if index in run.skips}
                chunk_id = run.next_chunk_id
                run.next_chunk_id += 1
                handle.inflight[chunk_id] = deque(indexes)
                if not handle.send((protocol.MSG_CHUNK, chunk_id, indexes, skips)):
                    # The worker is gone; its death puts these items back.
                    self._kill_worker(handle)
                    break

    def _on_results(
        self,
        run: _Generation,
        handle: WorkerHandle,
        chunk_id: int,
        rows: list[Any],
        chunk_done: bool,
        totals: tuple[dict[str, list[float]], dict[str, dict[str, int]]],
    ) -> None:
        if run.state != "scoring":
            return
        # This loop runs once per trace of every generation, so it keeps to local names.
        waiting = handle.inflight.get(chunk_id)
        trace_ids = self._trace_ids
        table = run.table
        stored = table.cells_by_trace
        add = table.add
        compare = run.differ.add
        failed_cells = run.failed_cells
        batch: list[str] = []
        done = run.done
        for index, cells, none_names, signature in rows:
            if waiting:
                # Rows come back in the order they were sent.
                if waiting[0] == index:
                    waiting.popleft()
                else:
                    try:
                        waiting.remove(index)
                    except ValueError:
                        pass
            trace_id = trace_ids[index]
            if failed_cells and index in failed_cells:
                failed = failed_cells.pop(index)
                run.collector.add(failed, ())
                cells = (*cells, *failed)
                signature = None
            if trace_id in stored:
                run.recount = True  # a second row for one trace: the running totals are off
            else:
                done += 1
            packed, interned = add(trace_id, cells, none_names, signature)
            compare(trace_id, packed, interned)
            batch.append(trace_id)
        run.done = done
        run.collector.merge(*totals)
        if chunk_done:
            handle.inflight.pop(chunk_id, None)
        if run.first_results is None:
            run.first_results = time.monotonic()
        if batch:
            self._publish(ResultsReceived(run.number, table.view(batch), run.done, run.total))
        self._dispatch(run)
        self._check_complete(run)

    def _add_row(self, run: _Generation, index: int, cells: list[Cell]) -> None:
        """Add a row the session made itself (no worker scored it), counting its values here."""
        trace_id = self._trace_ids[index]
        failed = run.failed_cells.pop(index, None)
        if failed:
            cells = list(cells) + failed
        table = run.table
        if trace_id in table:
            run.recount = True
        else:
            run.done += 1
        packed, signature = table.add(trace_id, cells)
        run.collector.add(packed)
        run.differ.add(trace_id, packed, signature)

    def _check_complete(self, run: _Generation) -> None:
        if run.state != "scoring" or run.pending or run.done < run.total:
            return
        if any(handle.inflight for handle in run.workers):
            return
        self._complete_scoring(run)

    def _complete_scoring(self, run: _Generation) -> None:
        from tui_eval.genai.aggregation import aggregate_values

        if run.recount:
            values, counts = run.table.collect_values()
        else:
            values, counts = run.collector.values, run.collector.counts
        stand_ins = [
            types.SimpleNamespace(
                name=item["name"],
                aggregations=None
                if item["aggregations"] is None
                else [name for name in item["aggregations"] if name is not None],
            )
            for item in run.scorers or ()
        ]
        run.metrics = aggregate_values(stand_ins, values)
        run.counts = counts
        if any(item["callable_aggregations"] for item in run.scorers or ()):
            aggregator = next(
                (h for h in run.workers if h.loaded and h.state == "running" and not h.connection_closed), None
            )
            if aggregator is not None and aggregator.send((protocol.MSG_AGGREGATE, values)):
                run.state = "aggregating"
                return
            # NOTE: with no live worker left (the last call timed out or crashed), the metrics
            # of the scorers' own aggregation functions are left out of this generation.
            logger.warning("generation %d: no worker left to run the scorers' aggregation functions", run.number)
        self._finish(run)

    def _finish(self, run: _Generation) -> None:
        if not run.active:
            return
        diff = run.differ.finish(
            run.table,
            old_metrics=self._final_metrics,
            new_metrics=run.metrics,
            old_scorers=self._final_scorers,
            new_scorers=run.scorer_names,
        )
        watcher = self._watcher
        newer_requested = self._requests_posted != self._requests_handled
        final = not newer_requested and not (watcher is not None and watcher.has_pending())
        run.state = "finished"
        now = time.monotonic()
        self._final_table = run.table
        self._final_metrics = dict(run.metrics)
        self._final_counts = run.counts
        self._final_scorers = run.scorer_names
        self._last_good_fingerprint = run.fingerprint
        self._stale = False
        self._last_error = None
        if watcher is not None:
            watcher.set_watch_all_python(False)
        if run.dropped_lines:
            self._publish(
                WorkerOutput(run.number, "stderr", f"[tui_eval: {run.dropped_lines} more output lines were dropped]")
            )
        timings = {
            "first_results_s": (run.first_results - run.started) if run.first_results else 0.0,
            "elapsed_s": now - run.started,
            "worker_scoring_s": run.worker_seconds,
            "worker_cpu_s": run.worker_cpu_seconds,
        }
        self._publish(
            GenerationFinished(
                run.number,
                dict(run.metrics),
                run.counts,
                diff,
                now - run.started,
                final,
                run.scorer_names,
                run.module_hash,
                timings,
            )
        )
        logger.debug("generation %d finished in %.3f s: %s", run.number, now - run.started, diff.summary())
        self._retire_workers(run)
        self._current = None
        self._schedule_write(run)
        self._replenish_spares()

    def _retire_workers(self, run: _Generation) -> None:
        for handle in run.workers:
            if handle.state == "running":
                handle.state = "exiting"
                if not handle.send((protocol.MSG_EXIT,)):
                    self._kill_worker(handle)

    def _cancel(self, run: _Generation) -> None:
        run.state = "cancelled"
        for handle in run.workers:
            self._kill_worker(handle)
            handle.state = "exiting" if handle.state == "running" else handle.state
        if self._current is run:
            self._current = None
        self._publish(GenerationCancelled(run.number))
        logger.debug("generation %d cancelled", run.number)

    def _fail(self, run: _Generation, info: dict[str, Any]) -> None:
        run.state = "failed"
        for handle in run.workers:
            self._kill_worker(handle)
        if self._current is run:
            self._current = None
        path = Path(info["path"]) if info.get("path") else None
        event = ReloadFailed(run.number, path, info.get("line"), info["message"], info.get("traceback", ""))
        self._mark_failed(event, info.get("files") or [])

    def _mark_failed(self, event: ReloadFailed, files: list[str]) -> None:
        self._stale = True
        self._last_error = event
        self._track_files(files, replace=False)
        if self._watcher is not None:
            self._watcher.set_watch_all_python(True)
        self._publish(event)
        logger.info("generation %d failed to load: %s", event.generation, event.message)
        self._replenish_spares()

    def _track_files(self, files: Iterable[str | Path], *, replace: bool) -> None:
        wanted = {Path(os.path.abspath(path)) for path in files}
        wanted.add(self.scorer_path)
        if not replace:
            wanted |= self._tracked_files
        if wanted == self._tracked_files:
            return
        self._tracked_files = wanted
        if self._watcher is not None:
            self._watcher.set_files(wanted)
        self._publish(FilesWatched(self.watched_files, self._watched_directories()))

    # -- writing results --------------------------------------------------------------------

    def _schedule_write(self, run: _Generation) -> None:
        if not self.write_results:
            return
        self._pending_write = run
        self._writes_idle.clear()
        if self._write_thread is None:
            self._start_write()

    def _start_write(self) -> None:
        run = self._pending_write
        if run is None or self._zygote is None:
            return
        self._pending_write = None
        names = set(run.table.assessment_names())
        payload = {
            "generation": run.number,
            "module_hash": run.module_hash,
            "create_time_ms": run.table.create_time_ms,
            "token": self._token,
            "rows": list(run.table.iter_cells()),
            "none_names": _none_names_by_trace(run.table),
            "names": sorted(names | self._stored_names),
            "delete_ids": [],
            "delete_generated": [],
        }
        for entry in self._stored_rows[:-1]:
            if entry[0] == "ids":
                payload["delete_ids"].extend(entry[1])
            else:
                payload["delete_generated"].append(entry[1:])
        count = sum(len(cells) for _trace_id, cells in payload["rows"])
        handle = self._new_handle(protocol.ROLE_WRITER)
        if handle.state == "dead":
            # No zygote to fork a writer: write once it has been restarted.
            self._pending_write = run
            return
        handle.state = "running"
        self._writes_idle.clear()
        thread = threading.Thread(
            target=self._write_in_thread,
            args=(handle, payload, ("generated", self._token, run.number, count), names),
            name="tui_eval-write",
            daemon=True,
        )
        self._write_thread = thread
        thread.start()

    def _write_in_thread(self, handle: WorkerHandle, payload: dict[str, Any], entry: tuple[Any, ...], names: set[str]) -> None:
        try:
            handle.connection.send((str(self.store_path), payload))
            outcome = handle.connection.recv()
        except (EOFError, OSError) as exc:
            outcome = ("write_failed", f"the writer process ended: {exc or 'end of file'}")
        self._post(("write_done", handle, payload["generation"], outcome, entry, names))

    def _on_write_done(
        self, handle: WorkerHandle, generation: int, outcome: tuple[Any, ...], entry: tuple[Any, ...], names: set[str]
    ) -> None:
        self._write_thread = None
        handle.close_connection()
        handle.state = "dead"
        self._maybe_forget(handle)
        if outcome[0] == "written":
            self._stored_rows = [*self._stored_rows[-1:], entry]
            self._stored_names = names
            logger.debug("generation %d written to the store: %s", generation, outcome[1])
        else:
            logger.error("writing generation %d to the store %s failed: %s", generation, self.store_path, outcome[1])
        if self._pending_write is not None:
            self._start_write()
        else:
            self._writes_idle.set()

    # -- stopping ---------------------------------------------------------------------------

    def _begin_stop(self) -> None:
        self._stopping = True
        self._start_request = None
        current = self._current
        if current is not None and current.active:
            self._cancel(current)
        for handle in list(self._spares):
            self._kill_worker(handle)
        self._spares.clear()

    def _ready_to_exit(self) -> bool:
        if self._write_thread is None and self._pending_write is not None and self._zygote is None:
            logger.warning("stopping without writing generation %d: no process is left to write it", self._pending_write.number)
            return True
        if time.monotonic() >= self._stop_deadline:
            if self._write_thread is not None or self._pending_write is not None:
                logger.warning("stopping before the latest scores were written to the store")
            return True
        return self._write_thread is None and self._pending_write is None

    def _shutdown(self) -> None:
        # A writer still running is left to finish: it has its payload and needs nothing more.
        for handle in list(self._handles.values()):
            if handle.role == protocol.ROLE_WORKER:
                self._kill_worker(handle)
        zygote = self._zygote
        if zygote is not None:
            zygote.quit()
            self._zygote = None
        for handle in list(self._handles.values()):
            handle.close()
        self._handles.clear()
        try:
            self._selector.close()
        except OSError:
            pass
        self._idle.set()
        self._writes_idle.set()
