"""The channels between a session, its zygote and the worker processes.

Process tree: the session (the TUI or CLI process) starts one *zygote* with ``subprocess``.
The zygote imports tui_eval, loads the session's traces from the store read-only, and then
forks a *worker* for each fork request. A forked worker starts with everything loaded,
because the zygote's memory is shared copy-on-write. The zygote never imports the
user's code, so every worker imports the scorer module from scratch.

Channels of one worker, all created by the session and handed to the zygote with
``socket.send_fds`` so that the worker inherits them across the fork:

- a stream socket carrying pickled messages (``multiprocessing.connection.Connection``);
- two pipes that become the worker's fds 1 and 2 (the user's stdout and stderr);
- a 32-byte shared memory block, ``ProgressBlock``, where the worker writes which item and
  scorer it is running. The session reads it to enforce the per-call timeout and to name the
  cell a dead worker was on, without a message per call.

Messages are tuples whose first element names them; see the ``MSG_*`` constants.
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import struct
import tempfile

# Session -> zygote: the configuration on the data connection, then fork requests on the
# control socket, each with its file descriptors attached.
MSG_CONFIGURE = "configure"  # (MSG_CONFIGURE, {"store_path", "trace_ids", "log_level"})
MSG_FORK = "fork"  # (MSG_FORK, key, role) + fds [connection, stdout, stderr, progress]
MSG_QUIT = "quit"

# Zygote -> session (on the zygote's data connection).
MSG_TRACES_LOADED = "traces_loaded"  # (.., {"trace_ids", "restored", "restored_generation", ...})
MSG_TRACES_FAILED = "traces_failed"  # (.., message)
MSG_TRACES_BUILT = "traces_built"  # (.., seconds) every item's Trace object exists now
MSG_FORKED = "forked"  # (.., key, pid)
MSG_FORK_FAILED = "fork_failed"  # (.., key, message)
MSG_EXITED = "exited"  # (.., pid, description)

# Worker -> session.
MSG_HELLO = "hello"  # (.., pid)
MSG_LOADED = "loaded"  # (.., {"scorers": [...], "files": [...], "import_s": float})
MSG_LOAD_FAILED = "load_failed"  # (.., {"path", "line", "message", "traceback", "files"})
# (.., chunk_id, [(item_index, cells, none_names, signature)], chunk_done, (wall s, CPU s), (values, counts))
MSG_RESULTS = "results"
MSG_AGGREGATED = "aggregated"  # (.., metrics dict)
MSG_FILES = "files"  # (.., [paths]) user modules imported while scoring

# Session -> worker.
MSG_RUN = "run"  # (.., {"generation", "module_path", ...})
MSG_CHUNK = "chunk"  # (.., chunk_id, [item_index], {item_index: [skipped scorer indexes]})
MSG_AGGREGATE = "aggregate"  # (.., {assessment name: [float]})
MSG_EXIT = "exit"

# Worker roles the zygote can fork.
ROLE_WORKER = "worker"
ROLE_WRITER = "writer"

# ProgressBlock stages written in the item field while no item is being scored.
STAGE_IMPORT = -1
STAGE_AGGREGATE = -2

# sequence, item index, scorer index, start (time.monotonic), check (see ProgressBlock)
_PROGRESS = struct.Struct("<qqqdq")
PROGRESS_SIZE = _PROGRESS.size
# Torn snapshots are retried this many times before a read gives up until the next look.
_READ_ATTEMPTS = 20


_MASK = 0x3FFFFFFFFFFFFFFF


def _check(sequence: int, item: int, scorer: int, started: float) -> int:
    # Never 0, so a zeroed or half-written record never passes.
    return ((sequence * 1_000_003 + item * 8_191 + scorer * 131 + int(started * 1e6)) & _MASK) | 1


class ProgressBlock:
    """Shared memory in which a worker records the scorer call it is in; the session reads it at any time.

    The sequence number is odd while a call runs and even between calls. The worker writes
    the whole record with one copy, but a reader on another core can still see it half
    written (and a worker descheduled in the middle of that copy leaves it so for
    milliseconds). Each record therefore carries a check computed from its fields. A reader
    retries a snapshot whose check does not match and gives up after a few tries, so it never
    acts on a torn snapshot (one that pairs a new call with a start time of 0 would look like
    a call running for hours). ``time.monotonic`` uses one clock for all processes on Linux
    and macOS, so the session can compare the start time with its own clock.
    """

    def __init__(self, fd: int):
        self._memory = mmap.mmap(fd, PROGRESS_SIZE)
        self._sequence = 0
        self._item = 0
        self._scorer = 0
        self._started = 0.0
        # The part of the check that only begin() changes (see _check).
        self._check_rest = 0

    @classmethod
    def create(cls) -> tuple[ProgressBlock, int]:
        """Create a zeroed block; returns it and a file descriptor to pass to the worker."""
        fd = _anonymous_file()
        os.ftruncate(fd, PROGRESS_SIZE)
        return cls(fd), fd

    # begin() and end() run twice per scorer call, so they inline _check.
    def begin(self, item: int, scorer: int, started: float) -> None:
        self._sequence += 1
        sequence = self._sequence
        self._item, self._scorer, self._started = item, scorer, started
        self._check_rest = rest = item * 8_191 + scorer * 131 + int(started * 1e6)
        # Packed into bytes first and copied in one slice: pack_into would zero the shared
        # record before filling it in, field by field.
        self._memory[:] = _PROGRESS.pack(sequence, item, scorer, started, ((sequence * 1_000_003 + rest) & _MASK) | 1)

    def end(self) -> None:
        self._sequence += 1
        sequence = self._sequence
        check = ((sequence * 1_000_003 + self._check_rest) & _MASK) | 1
        self._memory[:] = _PROGRESS.pack(sequence, self._item, self._scorer, self._started, check)

    def read(self) -> tuple[int, int, int, float] | None:
        """Return ``(sequence, item, scorer, started)``, or None if no whole snapshot could be read.

        ``sequence`` is odd while a call runs; it is 0 before the worker's first call.
        """
        for _ in range(_READ_ATTEMPTS):
            sequence, item, scorer, started, check = _PROGRESS.unpack_from(self._memory, 0)
            if check == _check(sequence, item, scorer, started):
                return sequence, item, scorer, started
            if sequence == 0 and item == 0 and scorer == 0 and started == 0.0 and check == 0:
                return 0, 0, 0, 0.0
        return None

    def close(self) -> None:
        self._memory.close()


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("tui_eval-progress", os.MFD_CLOEXEC)
    handle = tempfile.TemporaryFile()
    fd = os.dup(handle.fileno())
    handle.close()
    return fd


def control_socketpair() -> tuple[socket.socket, socket.socket]:
    """Create a socket pair that keeps message boundaries, for passing file descriptors to the zygote."""
    kind = getattr(socket, "SOCK_SEQPACKET", None)
    if kind is not None:
        try:
            return socket.socketpair(socket.AF_UNIX, kind)
        except OSError:
            pass
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def describe_exit_status(status: int) -> str:
    """Describe a ``waitpid`` status: "exit code 3", "signal SIGSEGV"."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"signal {name}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"status {status}"
