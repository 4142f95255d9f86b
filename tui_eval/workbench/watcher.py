"""Watch the scorer module and the user modules it imports, and report each settled save once.

The watcher watches directories, never single files, because editors save by renaming a new
file over the old one (JetBrains safe-write, vim's backup dance, write-temp-then-rename), which
a watch on the file itself would lose. Two threads do the work:

- the *watch thread* runs ``watchfiles.watch`` on the directories and queues every batch of
  changes that passes the editor-artifact filter;
- the *debounce thread* collects the changes that touch a tracked file and, once no change has
  arrived for ``quiet_ms``, checks that each changed Python file is complete (not empty, and it
  compiles). A file that is not waits up to ``settle_ms`` for the rest of the write, and is
  reported after that even if it is still empty or broken, so a real syntax error still shows.

``on_change`` then runs once per burst, on the debounce thread, with the changed paths.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import watchfiles

logger = logging.getLogger(__name__)

# How long one wait of the watch thread lasts, in milliseconds: it bounds how late the watcher
# reports itself ready and how late it notices a missing directory coming back.
_READY_POLL_MS = 100

# Directory names whose contents never start a reload.
IGNORED_DIRECTORY_NAMES = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".idea"}
)

# Editor swap, backup, lock and temporary files, matched against the file name.
_EDITOR_ARTIFACT = re.compile(
    r"""(
        \.sw[a-p]$ | \.sw[x-z]$          # vim swap files (.swp, .swo, ..., .swx)
      | ~$                               # backups of vim, emacs, gedit
      | ^\.\# | ^\#.*\#$                 # emacs lock and auto-save files
      | ___jb_(tmp|old|bak)___$          # JetBrains safe-write
      | \.(tmp|temp|bak|orig|rej|pyc|pyo|crswap|kate-swp)$
      | ^\.goutputstream-                # gedit / GIO atomic saves
      | ^\.~lock\.                       # LibreOffice locks
      | ^\.DS_Store$ | ^flycheck_ | ^\.\#
      | ^\d+$                            # vim's writability probe "4913" (and its successors)
    )""",
    re.VERBOSE,
)


def is_editor_artifact(name: str) -> bool:
    """Whether a file name is an editor's swap, backup, lock or temporary file."""
    return _EDITOR_ARTIFACT.search(name) is not None


class EditorFileFilter:
    """A ``watchfiles`` filter that drops editor artifacts, cache directories and the store files.

    ``ignored_paths`` are exact files to drop, for example the SQLite store; its ``-wal``,
    ``-shm`` and ``-journal`` companions are dropped with it.
    """

    def __init__(self, ignored_paths: Iterable[str | Path] = ()):
        ignored: set[str] = set()
        for path in ignored_paths:
            for base in {os.path.abspath(path), os.path.realpath(path)}:
                ignored.update({base, base + "-wal", base + "-shm", base + "-journal"})
        self._ignored = frozenset(ignored)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if path in self._ignored:
            return False
        parts = Path(path).parts
        if any(part in IGNORED_DIRECTORY_NAMES for part in parts[:-1]):
            return False
        name = parts[-1] if parts else path
        return name not in IGNORED_DIRECTORY_NAMES and not is_editor_artifact(name)


class _StopOrRestart:
    """The ``stop_event`` given to ``watchfiles.watch``: set when the watcher stops or must restart."""

    def __init__(self, stop: threading.Event, restart: threading.Event):
        self._stop = stop
        self._restart = restart

    def is_set(self) -> bool:
        return self._stop.is_set() or self._restart.is_set()


class ModuleWatcher:
    """Watch the directories of ``files`` and call ``on_change(paths)`` once per settled burst.

    A change counts when it touches a tracked file (the scorer module or a user module it
    imported). With ``watch_all_python`` set, any ``.py`` file in a watched directory counts as
    well; a session sets it while the module fails to import, because the fix may be a new
    file the failed import never reached.
    """

    def __init__(
        self,
        files: Iterable[str | Path],
        on_change: Callable[[list[Path]], None],
        *,
        ignored_paths: Iterable[str | Path] = (),
        quiet_ms: float = 50.0,
        settle_ms: float = 500.0,
        step_ms: int = 10,
    ):
        self._on_change = on_change
        self._filter = EditorFileFilter(ignored_paths)
        self._quiet_s = quiet_ms / 1000.0
        self._settle_s = settle_ms / 1000.0
        self._step_ms = step_ms
        self._lock = threading.Lock()
        self._files: frozenset[Path] = frozenset()
        self._directories: tuple[Path, ...] = ()
        self._watch_all_python = False
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._ready = threading.Event()
        self._batches: queue.Queue[set[tuple[watchfiles.Change, str]] | None] = queue.Queue()
        self._pending = False
        self._watch_thread: threading.Thread | None = None
        self._debounce_thread: threading.Thread | None = None
        self.set_files(files)

    @property
    def files(self) -> tuple[Path, ...]:
        """The tracked files, sorted."""
        return tuple(sorted(self._files))

    @property
    def directories(self) -> tuple[Path, ...]:
        """The directories being watched (not recursively), sorted."""
        return self._directories

    def set_files(self, files: Iterable[str | Path]) -> bool:
        """Replace the tracked files; returns True if the set changed. Restarts the watch if its directories change."""
        resolved = frozenset(Path(os.path.abspath(path)) for path in files)
        directories = tuple(sorted({path.parent for path in resolved}))
        with self._lock:
            if resolved == self._files:
                return False
            self._files = resolved
            restart = directories != self._directories
            self._directories = directories
        if restart and self._watch_thread is not None:
            self._ready.clear()
            self._restart.set()
        return True

    def set_watch_all_python(self, enabled: bool) -> None:
        """Count changes to any ``.py`` file in the watched directories, not only tracked ones."""
        with self._lock:
            self._watch_all_python = enabled

    def has_pending(self) -> bool:
        """Whether a burst of changes is being collected and will be reported soon."""
        return self._pending

    def start(self) -> None:
        """Start the watch and debounce threads; returns once the first watch is running."""
        if self._watch_thread is not None:
            return
        self._watch_thread = threading.Thread(target=self._watch_loop, name="tui_eval-watch", daemon=True)
        self._debounce_thread = threading.Thread(
            target=self._debounce_loop, name="tui_eval-debounce", daemon=True
        )
        self._watch_thread.start()
        self._debounce_thread.start()
        self._ready.wait(5.0)

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until the watch covers the current directories (after a start or a restart)."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Stop both threads and wait for them (at most a second each)."""
        self._stop.set()
        self._batches.put(None)
        for thread in (self._watch_thread, self._debounce_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(1.0)
        self._watch_thread = None
        self._debounce_thread = None

    # -- the watch thread -------------------------------------------------------------------

    def _watch_loop(self) -> None:
        stop_or_restart = _StopOrRestart(self._stop, self._restart)
        while not self._stop.is_set():
            self._restart.clear()
            with self._lock:
                wanted = self._directories
            existing = [str(directory) for directory in wanted if directory.is_dir()]
            missing = [directory for directory in wanted if str(directory) not in existing]
            if not existing:
                # Every directory is gone (deleted, or not created yet): look again shortly.
                self._ready.set()
                self._stop.wait(0.2)
                continue
            try:
                # The short rust_timeout makes the first (empty) batch arrive soon after the OS
                # watch is in place, which is when the watcher reports itself ready; changes made
                # before that first batch are not lost, they arrive in it.
                for changes in watchfiles.watch(
                    *existing,
                    watch_filter=self._filter,
                    debounce=1600,
                    step=self._step_ms,
                    stop_event=stop_or_restart,
                    rust_timeout=_READY_POLL_MS,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                    recursive=False,
                ):
                    self._ready.set()
                    if changes:
                        self._batches.put(changes)
                    if missing and any(directory.is_dir() for directory in missing):
                        break
            except Exception:
                logger.exception("watching %s failed; retrying in 0.2 s", ", ".join(existing))
                self._stop.wait(0.2)

    # -- the debounce thread ----------------------------------------------------------------

    def _debounce_loop(self) -> None:
        pending: set[Path] = set()
        quiet_deadline: float | None = None
        last_change = 0.0
        while True:
            timeout = None if quiet_deadline is None else max(0.0, quiet_deadline - time.monotonic())
            try:
                batch = self._batches.get(timeout=timeout)
            except queue.Empty:
                batch = set()
            if batch is None or self._stop.is_set():
                return
            relevant = self._relevant_paths(batch)
            now = time.monotonic()
            if relevant:
                pending |= relevant
                last_change = now
                quiet_deadline = now + self._quiet_s
                self._pending = True
                continue
            if quiet_deadline is None or now < quiet_deadline:
                continue
            incomplete = [path for path in sorted(pending) if not _looks_complete(path, self._files)]
            if incomplete and now < last_change + self._settle_s:
                logger.debug("waiting for %s to be written completely", ", ".join(map(str, incomplete)))
                quiet_deadline = last_change + self._settle_s
                continue
            changed = sorted(pending)
            pending.clear()
            quiet_deadline = None
            try:
                self._on_change(changed)
            except Exception:
                logger.exception("the change handler failed on %s", ", ".join(map(str, changed)))
            finally:
                self._pending = False

    def _relevant_paths(self, batch: set[tuple[watchfiles.Change, str]]) -> set[Path]:
        with self._lock:
            files = self._files
            all_python = self._watch_all_python
        relevant = set()
        for _change, raw_path in batch:
            path = Path(raw_path)
            if path in files or (all_python and path.suffix == ".py"):
                relevant.add(path)
        return relevant


def _looks_complete(path: Path, tracked: frozenset[Path]) -> bool:
    """Whether a changed file can be imported: it exists, is not empty and compiles.

    A deleted helper that is not tracked any more counts as complete (its deletion is the
    change). A tracked file that is missing does not, because editors delete it for a moment
    while they rename the new version over it.
    """
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        return path not in tracked
    except OSError:
        return False
    if path.suffix != ".py":
        return True
    if not source.strip():
        return False
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True
