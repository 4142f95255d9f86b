"""The session's handles on its zygote and worker processes (see ``protocol`` for the tree)."""

from __future__ import annotations

import logging
from collections import deque
import os
import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tui_eval.workbench import protocol
from tui_eval.workbench.protocol import ProgressBlock

logger = logging.getLogger(__name__)

# The maximum length of a published line of user output; longer lines are cut.
MAX_LINE_CHARS = 10_000
# Bytes read from an output pipe at a time.
_READ_SIZE = 1 << 16


def kill_process_group(pid: int) -> None:
    """Kill a worker and whatever it started (it leads its own process group), ignoring the already dead."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        # The child may not have made itself a group leader yet.
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def child_environment() -> dict[str, str]:
    """Return the environment for a child Python process: the caller's, with tui_eval importable even when not installed."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    current = env.get("PYTHONPATH")
    parts = current.split(os.pathsep) if current else []
    if package_root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([package_root, *parts])
    return env


class ZygoteProcess:
    """The zygote child: configure it once, then ask it to fork workers and writers."""

    def __init__(self) -> None:
        control_parent, control_child = protocol.control_socketpair()
        data_parent, data_child = socket.socketpair()
        command = [
            sys.executable,
            "-P",  # keep the working directory off sys.path: a user's json.py must not shadow the stdlib
            "-m",
            "tui_eval.workbench.zygote",
            "--control-fd",
            str(control_child.fileno()),
            "--data-fd",
            str(data_child.fileno()),
        ]
        try:
            self.process = subprocess.Popen(
                command,
                pass_fds=(control_child.fileno(), data_child.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=child_environment(),
            )
        finally:
            control_child.close()
            data_child.close()
        self.control = control_parent
        self.data = Connection(data_parent.detach())
        assert self.process.stderr is not None
        self.stderr_fd = self.process.stderr.fileno()
        os.set_blocking(self.stderr_fd, False)
        self._stderr_buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def configure(self, config: dict[str, Any]) -> None:
        """Send the configuration; blocks until the zygote has read it (it may be megabytes of ids)."""
        self.data.send((protocol.MSG_CONFIGURE, config))

    def fork(self, key: int, role: str, fds: list[int]) -> None:
        """Ask for a child of ``role`` that inherits ``fds`` (connection, stdout, stderr, progress)."""
        socket.send_fds(self.control, [pickle.dumps((protocol.MSG_FORK, key, role))], fds)

    def read_stderr(self) -> list[str] | None:
        """Return the complete lines the zygote wrote to stderr, or None at end of file."""
        lines, self._stderr_buffer, ended = _read_lines(self.stderr_fd, self._stderr_buffer)
        return None if ended and not lines else lines

    def quit(self, timeout: float = 2.0) -> None:
        """Ask the zygote to kill its children and exit; kill it if it does not within ``timeout``."""
        try:
            self.control.send(pickle.dumps((protocol.MSG_QUIT,)))
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_process_group(self.process.pid)
            self.process.wait(timeout)
        self.close()

    def close(self) -> None:
        """Close the channels and reap the process if it has ended."""
        for closable in (self.control, self.data):
            try:
                closable.close()
            except OSError:
                pass
        if self.process.stderr is not None:
            self.process.stderr.close()
        try:
            self.process.wait(0.2)
        except subprocess.TimeoutExpired:
            logger.warning("the workbench zygote (pid %d) is still running after its channels closed", self.pid)


class WorkerHandle:
    """The session's end of one worker (or writer): its channels, its state and its output buffers."""

    def __init__(self, key: int, role: str = protocol.ROLE_WORKER):
        self.key = key
        self.role = role
        parent_end, child_end = socket.socketpair()
        self.connection = Connection(parent_end.detach())
        # Kept apart from the connection, which refuses fileno() once closed.
        self.connection_fd = self.connection.fileno()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        os.set_blocking(stdout_read, False)
        os.set_blocking(stderr_read, False)
        self.progress, progress_fd = ProgressBlock.create()
        self.child_fds = [child_end.detach(), stdout_write, stderr_write, progress_fd]
        self.output_fds = {stdout_read: "stdout", stderr_read: "stderr"}
        self._buffers = {stdout_read: b"", stderr_read: b""}
        self.pid: int | None = None
        # "forking" -> "spare" (hello received) -> "running" -> "exiting"; "dead" at the end.
        self.state = "forking"
        self.run: Any = None
        self.loaded = False
        self.inflight: dict[int, deque[int]] = {}
        self.kill_reason: str | None = None
        self.exit_description: str | None = None
        self.reaped = False
        self.connection_closed = False
        self.death_deadline: float | None = None

    def close_child_fds(self) -> None:
        """Close the session's copies of the child's descriptors, once the zygote has them."""
        for fd in self.child_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.child_fds = []

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send a message; False if the worker is gone."""
        if self.connection_closed:
            return False
        try:
            self.connection.send(message)
        except (OSError, ValueError):
            return False
        return True

    def kill(self, reason: str | None = None) -> None:
        """Kill the worker's process group once its pid is known; ``reason`` names why, for the cell it was on."""
        if reason is not None and self.kill_reason is None:
            self.kill_reason = reason
        # Once the zygote has reaped it, the pid may belong to another process.
        if self.pid is not None and not self.reaped:
            kill_process_group(self.pid)

    def read_output(self, fd: int) -> list[str] | None:
        """Return the complete lines read from one output pipe, or None at end of file.

        At end of file an unterminated last line is returned too.
        """
        lines, self._buffers[fd], ended = _read_lines(fd, self._buffers[fd])
        if ended:
            self.output_fds.pop(fd, None)
            try:
                os.close(fd)
            except OSError:
                pass
            return lines or None
        return lines

    def close_connection(self) -> None:
        if not self.connection_closed:
            self.connection_closed = True
            try:
                self.connection.close()
            except OSError:
                pass

    def close(self) -> None:
        """Close every descriptor the session holds for this worker."""
        self.close_connection()
        self.close_child_fds()
        for fd in list(self.output_fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self.output_fds.clear()
        try:
            self.progress.close()
        except (OSError, ValueError):
            pass


def _read_lines(fd: int, buffer: bytes) -> tuple[list[str], bytes, bool]:
    """Read what a non-blocking pipe holds; returns (complete lines, the rest, end of file reached)."""
    ended = False
    chunks = [buffer]
    while True:
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            break
        except OSError:
            ended = True
            break
        if not chunk:
            ended = True
            break
        chunks.append(chunk)
        if len(chunk) < _READ_SIZE:
            break
    data = b"".join(chunks)
    *complete, rest = data.split(b"\n")
    if rest and (ended or len(rest) > 4 * MAX_LINE_CHARS):
        # A line without an end (or too long to wait for) is published as it is.
        complete.append(rest)
        rest = b""
    lines = [_decode_line(raw) for raw in complete]
    return lines, rest, ended


def _decode_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if len(text) > MAX_LINE_CHARS:
        text = f"{text[:MAX_LINE_CHARS]}... ({len(text) - MAX_LINE_CHARS} more characters)"
    return text
