"""The worker side of a generation: import the user's scorer module from scratch and score items.

A worker is a child forked by the zygote (see ``protocol``) with the session's items already
in memory. It waits as a spare until the session sends ``MSG_RUN``, then imports the module,
reports its scorers and the user files it imported, and scores the chunks of items the session
sends, streaming the cells back. It never returns to being a spare: one worker, one import.

User modules are compiled from their source on every import, never from ``__pycache__``.
A ``.pyc`` is matched to its source by modification time in whole seconds and by size, so
two quick saves of the same length would otherwise run stale bytecode.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import math
import os
import site
import sys
import sysconfig
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tui_eval.genai.aggregation import classify_value
from tui_eval.genai.scorers import check_result
from tui_eval.workbench import protocol
from tui_eval.workbench.protocol import ProgressBlock
from tui_eval.workbench.results import ValueCollector, cell_from_feedback

# How often a worker sends the cells of a chunk it is still scoring, in seconds.
FLUSH_INTERVAL_S = 0.03
# Lines of traceback kept in a load error.
MAX_TRACEBACK_FRAMES = 12


# -- telling user files from library files ----------------------------------------------------


def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            roots.add(os.path.realpath(paths[key]))
    try:
        roots.update(os.path.realpath(path) for path in site.getsitepackages())
    except AttributeError:  # some virtualenv versions ship a site module without it
        pass
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        roots.add(os.path.realpath(user_site))
    import tui_eval

    roots.add(os.path.realpath(os.path.dirname(tui_eval.__file__)))
    return tuple(sorted(root.rstrip(os.sep) + os.sep for root in roots))


_LIBRARY_ROOTS: tuple[str, ...] | None = None


def is_user_path(path: str | None) -> bool:
    """Tell whether a file belongs to the user: a real file outside the standard library, site-packages and tui_eval."""
    global _LIBRARY_ROOTS
    if not path or path.startswith("<"):
        return False
    if _LIBRARY_ROOTS is None:
        _LIBRARY_ROOTS = _library_roots()
    real = os.path.realpath(path)
    if real.startswith(_LIBRARY_ROOTS):
        return False
    return os.path.isfile(real)


def user_module_files(module_names: Sequence[str] | None = None) -> list[str]:
    """Return the files of the imported user modules (all of ``sys.modules``, or just ``module_names``)."""
    files: set[str] = set()
    names = list(sys.modules) if module_names is None else module_names
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and is_user_path(path):
            files.add(os.path.abspath(path))
    return sorted(files)


# -- importing from source --------------------------------------------------------------------


class FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that compiles the file on every import and never reads or writes a .pyc."""

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _fresh_finder_hook(path_entry: str) -> importlib.machinery.FileFinder:
    directory = path_entry or os.getcwd()
    if not os.path.isdir(directory) or not _is_user_directory(directory):
        raise ImportError(f"{directory} is not a user directory")
    return importlib.machinery.FileFinder(
        path_entry,
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (FreshSourceLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    )


def _is_user_directory(directory: str) -> bool:
    global _LIBRARY_ROOTS
    if _LIBRARY_ROOTS is None:
        _LIBRARY_ROOTS = _library_roots()
    real = os.path.realpath(directory).rstrip(os.sep) + os.sep
    return not real.startswith(_LIBRARY_ROOTS)


def install_fresh_imports(directories: Sequence[str]) -> None:
    """Put ``directories`` first on ``sys.path`` and compile every user module there from source."""
    if _fresh_finder_hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _fresh_finder_hook)
    for directory in reversed(directories):
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
    sys.path_importer_cache.clear()
    sys.dont_write_bytecode = True


def import_scorer_module(path: str) -> Any:
    """Import the scorer module at ``path`` as a new module (as part of its package, if it is in one)."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    stem = os.path.splitext(os.path.basename(path))[0]

    package_parts: list[str] = []
    base = directory
    while os.path.isfile(os.path.join(base, "__init__.py")):
        package_parts.insert(0, os.path.basename(base))
        base = os.path.dirname(base)

    search_path = [directory]
    if package_parts:
        search_path.append(base)
    cwd = os.getcwd()
    if cwd not in search_path:
        search_path.append(cwd)
    install_fresh_imports(search_path)

    if package_parts:
        dotted = ".".join(package_parts if stem == "__init__" else [*package_parts, stem])
        return importlib.import_module(dotted)

    name = stem if stem.isidentifier() and stem not in sys.modules else f"_tui_eval_user_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path, loader=FreshSourceLoader(name, path))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: it is not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


# -- describing a failed import ---------------------------------------------------------------


def describe_load_error(exc: BaseException, module_path: str) -> dict[str, Any]:
    """Locate a failed import in the user's code: file, line, message and a trimmed traceback."""
    if isinstance(exc, SyntaxError):
        path = exc.filename or module_path
        text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        return {
            "path": os.path.abspath(path) if path and not path.startswith("<") else module_path,
            "line": exc.lineno,
            "message": f"{type(exc).__name__}: {exc.msg}",
            "traceback": text,
        }
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if is_user_path(frame.filename)]
    frames = frames[-MAX_TRACEBACK_FRAMES:]
    innermost = frames[-1] if frames else None
    detail = str(exc)
    message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return {
        "path": os.path.abspath(innermost.filename) if innermost else module_path,
        "line": innermost.lineno if innermost else None,
        "message": message,
        "traceback": "".join(lines).rstrip(),
    }


# -- the worker loop --------------------------------------------------------------------------


class Worker:
    """One generation's worker: owns the imported module and scores the chunks it is sent."""

    def __init__(self, connection: Connection, progress: ProgressBlock, items: Sequence[Any]):
        self.connection = connection
        self.progress = progress
        self.items = items
        self.scorers: list[Any] = []
        self.prepared: list[Any] = []
        # The signature of a row where every scorer returned one cell of its own name.
        self.plain_signature: tuple[str, ...] = ()
        self.reported_files: set[str] = set()
        self.known_modules: set[str] = set()

    def serve(self) -> None:
        """Wait for ``MSG_RUN`` (as a spare), then handle messages until ``MSG_EXIT`` or end of file."""
        self.connection.send((protocol.MSG_HELLO, os.getpid()))
        try:
            message = self.connection.recv()
        except EOFError:
            return
        if message[0] != protocol.MSG_RUN:
            return
        if not self.load(message[1]):
            return
        while True:
            try:
                message = self.connection.recv()
            except EOFError:
                return
            kind = message[0]
            if kind == protocol.MSG_CHUNK:
                self.score_chunk(message[1], message[2], message[3])
            elif kind == protocol.MSG_AGGREGATE:
                self.aggregate(message[1])
            elif kind == protocol.MSG_EXIT:
                return

    def load(self, spec: dict[str, Any]) -> bool:
        """Import the module and find its scorers; report ``MSG_LOADED`` or ``MSG_LOAD_FAILED``."""
        from tui_eval.errors import TuiEvalError
        from tui_eval.genai.scoring import discover_scorers, prepare_scorers, validate_aggregations

        module_path = spec["module_path"]
        _limit_memory(spec.get("memory_limit_bytes"))
        # Everything imported before the user's module comes from the zygote, which never
        # imports user code, so only modules added from here on can be user files.
        self.known_modules = set(sys.modules)
        started = time.monotonic()
        self.progress.begin(protocol.STAGE_IMPORT, 0, started)
        try:
            module = import_scorer_module(module_path)
            scorers = discover_scorers(module)
            validate_aggregations(scorers)
        except TuiEvalError as exc:
            self.progress.end()
            self._send_load_failure(
                {"path": module_path, "line": None, "message": str(exc), "traceback": str(exc)}, module_path
            )
            return False
        except BaseException as exc:  # noqa: BLE001 - the user's module may raise anything, even SystemExit
            self.progress.end()
            self._send_load_failure(describe_load_error(exc, module_path), module_path)
            return False
        self.progress.end()
        _flush_user_streams()
        self.scorers = scorers
        self.prepared = prepare_scorers(scorers)
        self.plain_signature = tuple(entry.name for entry in self.prepared)
        files = self._new_user_files()
        descriptions = []
        for scorer in scorers:
            aggregations = scorer.aggregations
            descriptions.append(
                {
                    "name": scorer.name,
                    "aggregations": None
                    if aggregations is None
                    else [item if isinstance(item, str) else None for item in aggregations],
                    "callable_aggregations": [
                        getattr(item, "__name__", type(item).__name__)
                        for item in (aggregations or ())
                        if not isinstance(item, str)
                    ],
                }
            )
        self.connection.send(
            (
                protocol.MSG_LOADED,
                {"scorers": descriptions, "files": files, "import_s": time.monotonic() - started},
            )
        )
        return True

    def _new_user_files(self) -> list[str]:
        """User files among the modules imported since the last call."""
        new_modules = sys.modules.keys() - self.known_modules
        if not new_modules:
            return []
        self.known_modules.update(new_modules)
        files = sorted(set(user_module_files(sorted(new_modules))) - self.reported_files)
        self.reported_files.update(files)
        return files

    def _send_load_failure(self, error: dict[str, Any], module_path: str) -> None:
        _flush_user_streams()
        files = set(self._new_user_files())
        files.add(os.path.abspath(module_path))
        if error.get("path") and is_user_path(error["path"]):
            files.add(os.path.abspath(error["path"]))
        error["files"] = sorted(files)
        self.connection.send((protocol.MSG_LOAD_FAILED, error))

    def score_chunk(self, chunk_id: int, indexes: Sequence[int], skips: dict[int, Sequence[int]]) -> None:
        """Score the items at ``indexes``, sending their cells at least every ``FLUSH_INTERVAL_S``.

        Each message carries rows ``(item index, cells, names of scorers that returned None,
        signature)`` and the rows' values and counts per name, so the session merges totals
        instead of reading every cell again.
        """
        rows: list[tuple[int, tuple[Any, ...], tuple[str, ...], tuple[str, ...]]] = []
        collector = ValueCollector()
        last_flush = started = time.monotonic()
        cpu_started = time.process_time()
        progress = self.progress
        prepared = self.prepared
        items = self.items
        plain_signature = self.plain_signature
        for index in indexes:
            item = items[index]
            skipped = skips.get(index)
            cells: list[Any] = []
            none_names: list[str] = []
            plain = not skipped
            for position, entry in enumerate(prepared):
                if skipped and position in skipped:
                    continue
                progress.begin(index, position, time.monotonic())
                try:
                    result = score_cells(entry, item)
                except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and friends from user code
                    result = [_feedback_cell(entry.error_feedback(exc, item.trace_id), entry.name)]
                progress.end()
                if result is None:
                    none_names.append(entry.name)
                    plain = False
                    continue
                if plain and (len(result) != 1 or result[0][0] != entry.name):
                    plain = False
                cells.extend(result)
            packed = tuple(cells)
            signature = plain_signature if plain else tuple([cell[0] for cell in packed])
            rows.append((index, packed, tuple(none_names), signature))
            collector.add(packed, none_names)
            now = time.monotonic()
            if now - last_flush >= FLUSH_INTERVAL_S:
                _flush_user_streams()
                cpu_now = time.process_time()
                spent = (now - started, cpu_now - cpu_started)
                totals = (collector.values, collector.counts)
                self.connection.send((protocol.MSG_RESULTS, chunk_id, rows, False, spent, totals))
                rows = []
                collector = ValueCollector()
                last_flush = started = now
                cpu_started = cpu_now
        _flush_user_streams()
        spent = (time.monotonic() - started, time.process_time() - cpu_started)
        totals = (collector.values, collector.counts)
        self.connection.send((protocol.MSG_RESULTS, chunk_id, rows, True, spent, totals))
        files = self._new_user_files()
        if files:
            self.connection.send((protocol.MSG_FILES, files))

    def aggregate(self, values: dict[str, list[float]]) -> None:
        """Compute the metrics of the scorers' own aggregation functions, which only this process may run."""
        from tui_eval.genai.aggregation import aggregate_values

        self.progress.begin(protocol.STAGE_AGGREGATE, 0, time.monotonic())
        try:
            metrics = aggregate_values(self.scorers, values)
        except BaseException:  # noqa: BLE001 - a user aggregation may raise anything
            traceback.print_exc()
            metrics = {}
        self.progress.end()
        _flush_user_streams()
        self.connection.send((protocol.MSG_AGGREGATED, metrics))


def score_cells(entry: Any, item: Any) -> list[Any] | None:
    """Run one prepared scorer on one item and return its cells, or None when it returned None.

    Same results as ``entry.score(item)`` turned into cells, but a plain bool, int, float or str
    (what most scorers return) becomes its cell directly, without a Feedback object in between,
    which halves the cost of a cheap scorer's call. An ``Exception`` or ``SystemExit`` from the
    scorer becomes an error cell; other ``BaseException``s propagate to the caller.
    """
    if entry.problem is not None:
        feedbacks = entry.score(item)
        return None if feedbacks is None else [_feedback_cell(feedback, entry.name) for feedback in feedbacks]
    try:
        value = entry.function(**{name: getattr(item, name) for name in entry.names})
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a scorer's failure becomes its cell
        return [_feedback_cell(entry.error_feedback(exc, item.trace_id), entry.name)]
    value_type = type(value)
    if value_type is bool or value_type is int or value_type is float or value_type is str:
        name = entry.name
        return [(name, value, None, None, None, None, None, "CODE", name, None, plain_outcome(value), name)]
    try:
        # NOTE: _to_feedback is the scoring core's own conversion of a checked result; it is
        # private there, and test_workbench_worker pins this path to entry.score's results.
        feedbacks = entry._to_feedback(check_result(entry.name, value), item.trace_id)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - an invalid result becomes its cell
        return [_feedback_cell(entry.error_feedback(exc, item.trace_id), entry.name)]
    return None if feedbacks is None else [_feedback_cell(feedback, entry.name) for feedback in feedbacks]


def plain_outcome(value: bool | int | float | str) -> float | str:
    """Classify a plain value as ``classify_value`` does: the float it adds to aggregates, or a count name."""
    if type(value) is str:
        lowered = value.lower()
        if lowered == "yes":
            return 1.0
        if lowered == "no":
            return 0.0
        return "n_other"
    number = float(value)
    return number if math.isfinite(number) else "n_nan"


def _feedback_cell(feedback: Any, scorer: str) -> Any:
    return cell_from_feedback(feedback, classify_value(feedback), scorer)


def _flush_user_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - user code may have replaced or closed the stream
            pass


def _limit_memory(limit_bytes: int | None) -> None:
    """Cap the address space at its current size plus ``limit_bytes``, so a runaway allocation raises MemoryError."""
    if not limit_bytes:
        return
    try:
        import resource
    except ImportError:  # not on this platform
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        # NOTE: without /proc (macOS) the current size is unknown; the cap then covers the whole
        # address space, and macOS does not enforce RLIMIT_AS anyway.
        current = 0
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = current + int(limit_bytes)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    except (ValueError, OSError):
        pass
