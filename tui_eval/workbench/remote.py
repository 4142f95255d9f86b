"""Run a workbench ``Session`` in a process of its own and relay its events.

The TUI must respond to keys within a few tens of milliseconds while a generation streams in
results for 100,000 traces. A session in the TUI's process spends about as much CPU as the
UI itself does in that time (reading worker messages, diffing, writing to the store), and
its threads hold the interpreter lock the UI thread waits for. ``RemoteSession`` keeps the
same calls (``subscribe``, ``start``, ``stop``, ``rescore``, ``set_visible``) and events, but
the session runs in a *host* process started with ``python -m tui_eval.workbench.remote``.

The host sends events, log records and replies over one socket. The caller's end reads them
on a thread, so subscribers are called on a background thread, as with ``Session``. Two
events change form on the way, because they would otherwise carry the whole session state:

- ``ResultsReceived.results`` is a ``ResultTable`` holding that batch's traces only;
- ``GenerationFinished.diff`` keeps its counts, scorer and aggregate changes and
  ``changed_trace_ids``, but not the per-cell map ``cells`` (empty on this side).

If the host process dies, subscribers get a ``ReloadFailed`` of generation 0 whose message reports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tui_eval.errors import TuiEvalError
from tui_eval.workbench.events import GenerationFinished, ReloadFailed, ResultsReceived, Subscribers, WorkbenchEvent
from tui_eval.workbench.processes import child_environment

logger = logging.getLogger(__name__)

# Host -> caller.
MSG_STARTED = "started"  # (MSG_STARTED,)
MSG_START_FAILED = "start_failed"  # (.., exception or None, type name, message)
MSG_EVENT = "event"  # (.., event)
MSG_LOG = "log"  # (.., logger name, level, message)
MSG_STOPPED = "stopped"  # (MSG_STOPPED,)
# Caller -> host.
MSG_VISIBLE = "visible"  # (.., trace ids)
MSG_RESCORE = "rescore"  # (MSG_RESCORE,)
MSG_STOP = "stop"  # (.., timeout)

# Seconds to wait for the host to start the session (it lists the trace ids of the store).
START_TIMEOUT_S = 120.0
# The last lines of the host's own output kept to explain an unexpected exit.
_KEPT_OUTPUT_LINES = 40


class WorkbenchProcessError(TuiEvalError):
    """The workbench process could not be started or ended unexpectedly."""


class RemoteSession:
    """A ``Session`` in a child process, driven through the same calls (see the module docstring).

    ``options`` are passed on to ``Session`` (``timeout``, ``workers``, ``watch``...); they must
    be picklable.
    """

    def __init__(
        self,
        store_path: str | os.PathLike[str],
        scorer_path: str | os.PathLike[str],
        *,
        run_id: str | None = None,
        filter_string: str | None = None,
        **options: Any,
    ):
        self.store_path = Path(store_path).expanduser().absolute()
        self.scorer_path = Path(os.path.abspath(os.path.expanduser(scorer_path)))
        self.run_id = run_id
        self.filter_string = filter_string
        self.options = options
        self._subscribers = Subscribers()
        self._send_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._reader: threading.Thread | None = None
        self._output_reader: threading.Thread | None = None
        self._output_tail: list[str] = []
        self._started = threading.Event()
        self._start_reply: tuple[Any, ...] | None = None
        self._stopped = threading.Event()
        self._stopping = False
        self._visible_before_start: list[str] | None = None

    # -- public API -------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[WorkbenchEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every event, on the reader thread; returns a function that unsubscribes."""
        return self._subscribers.add(callback)

    def start(self) -> None:
        """Start the host process and its session; raises what ``Session.start`` raised there."""
        if self._process is not None:
            return
        config = {
            "store_path": str(self.store_path),
            "scorer_path": str(self.scorer_path),
            "run_id": self.run_id,
            "filter_string": self.filter_string,
            "options": self.options,
        }
        if not self._spawn_host(config):
            self._raise_start_failure(None)
        if not self._started.wait(START_TIMEOUT_S):
            self._kill()
            raise WorkbenchProcessError(
                f"the workbench process did not start its session within {START_TIMEOUT_S:.0f} s"
            )
        reply = self._start_reply
        if reply is None or reply[0] != MSG_STARTED:
            self._raise_start_failure(reply)

    def _spawn_host(self, config: dict[str, Any]) -> bool:
        """Start the host and send it ``config``, its first message; False if it is already gone."""
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-P", "-m", "tui_eval.workbench.remote", "--fd", str(theirs.fileno())]
        try:
            self._process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Terminal signals (Ctrl+Z while an editor runs) are for the UI, not for the host.
                start_new_session=True,
                env=child_environment(),
            )
        except OSError as error:
            ours.close()
            raise WorkbenchProcessError(f"could not start the workbench process ({error}): check that {sys.executable} runs") from error
        finally:
            theirs.close()
        connection = Connection(ours.detach())
        self._output_reader = threading.Thread(target=self._read_output, name="tui_eval-host-output", daemon=True)
        self._output_reader.start()
        with self._send_lock:
            # Other threads may call set_visible or rescore at any time; the host reads the
            # configuration first, so nothing may reach the socket before it.
            try:
                connection.send(config)
                if self._visible_before_start is not None:
                    connection.send((MSG_VISIBLE, self._visible_before_start))
                    self._visible_before_start = None
            except (OSError, ValueError):
                connection.close()
                return False
            self._connection = connection
        self._reader = threading.Thread(target=self._read_messages, name="tui_eval-host", daemon=True)
        self._reader.start()
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the session (waiting at most ``timeout`` seconds for its store writes) and the host."""
        process = self._process
        if process is None or self._stopping:
            return
        self._stopping = True
        self._send((MSG_STOP, timeout))
        self._stopped.wait(timeout + 10.0)
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            logger.warning("the workbench process (pid %d) did not exit; killing it", process.pid)
            self._kill()
        if self._connection is not None:
            self._connection.close()
        for thread in (self._reader, self._output_reader):
            if thread is not None and thread is not threading.current_thread():
                thread.join(5.0)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> RemoteSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def rescore(self) -> None:
        """Start a new generation now, even if no file changed."""
        self._send((MSG_RESCORE,))

    def set_visible(self, trace_ids: Iterable[str]) -> None:
        """Score these traces first, in this order, in the running and in later generations."""
        ids = list(trace_ids)
        with self._send_lock:
            if self._connection is None:
                # Before the host has its configuration: sent right after it.
                self._visible_before_start = ids
                return
        self._send((MSG_VISIBLE, ids))

    @property
    def pid(self) -> int | None:
        """The host process's id (None before ``start``)."""
        return self._process.pid if self._process is not None else None

    # -- the caller's side ------------------------------------------------------------------

    def _send(self, message: Any) -> bool:
        connection = self._connection
        # False when the host has gone; the reader reports that.
        return connection is not None and _send_locked(connection, self._send_lock, message)

    def _read_messages(self) -> None:
        connection = self._connection
        assert connection is not None
        try:
            while True:
                try:
                    message = connection.recv()
                except (EOFError, OSError):
                    break
                kind = message[0]
                if kind == MSG_EVENT:
                    self._subscribers.publish(message[1])
                elif kind == MSG_LOG:
                    _, name, level, text = message
                    logging.getLogger(name).log(level, "%s", text)
                elif kind in (MSG_STARTED, MSG_START_FAILED):
                    self._start_reply = message
                    self._started.set()
                elif kind == MSG_STOPPED:
                    self._stopped.set()
                    break
        finally:
            self._started.set()
            self._stopped.set()
        if not self._stopping and self._start_reply is not None and self._start_reply[0] == MSG_STARTED:
            self._report_death()

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._output_tail = [*self._output_tail[-(_KEPT_OUTPUT_LINES - 1) :], line]
            logger.warning("workbench process: %s", line)

    def _report_death(self) -> None:
        process = self._process
        assert process is not None
        try:
            code = process.wait(5.0)
        except subprocess.TimeoutExpired:
            code = None
        if self._output_reader is not None:
            self._output_reader.join(2.0)
        status = "is still running" if code is None else _describe_returncode(code)
        self._subscribers.publish(
            ReloadFailed(
                generation=0,
                path=None,
                line=None,
                message=f"the workbench process stopped unexpectedly ({status}); restart tui-eval to score again",
                traceback="\n".join(self._output_tail),
            )
        )

    def _raise_start_failure(self, reply: tuple[Any, ...] | None) -> None:
        self._kill()
        self._stopping = True  # no death report: the caller gets the exception instead
        # The host is dead, so the reader meets the end of the socket and returns.
        if self._reader is not None:
            self._reader.join(5.0)
        if self._connection is not None:
            self._connection.close()
        if reply is not None and reply[0] == MSG_START_FAILED:
            _, error, type_name, text = reply
            self._close_output()
            if isinstance(error, BaseException):
                raise error
            raise WorkbenchProcessError(f"{type_name}: {text}")
        self._close_output()
        detail = "; ".join(self._output_tail[-5:]) or "no output"
        raise WorkbenchProcessError(f"the workbench process exited before starting its session ({detail})")

    def _close_output(self) -> None:
        if self._output_reader is not None:
            self._output_reader.join(2.0)
        process = self._process
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            logger.warning("the workbench process (pid %d) survived SIGKILL", process.pid)


def _send_locked(connection: Connection, lock: threading.Lock, message: Any) -> bool:
    """Send ``message`` while holding ``lock``; False if the other end has gone."""
    try:
        with lock:
            connection.send(message)
    except (OSError, ValueError):
        return False
    return True


def _describe_returncode(code: int) -> str:
    if code < 0:
        from tui_eval.workbench.protocol import describe_exit_status

        return describe_exit_status(-code)
    return f"exit code {code}"


# -- the host's side --------------------------------------------------------------------------


def _for_wire(event: WorkbenchEvent) -> WorkbenchEvent:
    """Return the event as it crosses to the caller (see the module docstring for what changes)."""
    if isinstance(event, ResultsReceived):
        detach = getattr(event.results, "detached", None)
        if callable(detach):
            return dataclasses.replace(event, results=detach())
    elif isinstance(event, GenerationFinished) and event.diff.cells:
        return dataclasses.replace(event, diff=dataclasses.replace(event.diff, cells={}))
    return event


class _Relay(logging.Handler):
    """Send the host's log records to the caller, which logs them under the same names."""

    def __init__(self, send: Callable[[Any], bool]):
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is sent as its message
            text = str(record.msg)
        self._send((MSG_LOG, record.name, record.levelno, text))


def _start_failure(error: BaseException) -> tuple[Any, ...]:
    try:
        payload: BaseException | None = error if type(pickle.loads(pickle.dumps(error))) is type(error) else None
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling goes as text
        payload = None
    return (MSG_START_FAILED, payload, type(error).__name__, str(error))


def serve(connection: Connection) -> int:
    """Run one session for the caller at the other end of ``connection``; returns the exit code."""
    lock = threading.Lock()

    def send(message: Any) -> bool:
        return _send_locked(connection, lock, message)

    relay = _Relay(send)
    package_logger = logging.getLogger("tui_eval")
    package_logger.addHandler(relay)
    package_logger.setLevel(logging.INFO)
    # The records go to the caller only, not to this process's stderr as well.
    package_logger.propagate = False
    try:
        config = connection.recv()
    except (EOFError, OSError):
        return 0
    from tui_eval.workbench.session import Session

    try:
        session = Session(
            config["store_path"],
            config["scorer_path"],
            run_id=config["run_id"],
            filter_string=config["filter_string"],
            **config["options"],
        )
        session.subscribe(lambda event: send((MSG_EVENT, _for_wire(event))))
        session.start()
    except Exception as error:  # noqa: BLE001 - sent to the caller, which raises it
        send(_start_failure(error))
        return 1
    send((MSG_STARTED,))
    stop_timeout = 30.0
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            # The caller is gone (it quit or was killed): stop as it would have asked.
            break
        kind = message[0]
        if kind == MSG_VISIBLE:
            session.set_visible(message[1])
        elif kind == MSG_RESCORE:
            session.rescore()
        elif kind == MSG_STOP:
            stop_timeout = message[1]
            break
    session.stop(stop_timeout)
    send((MSG_STOPPED,))
    package_logger.removeHandler(relay)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui_eval.workbench.remote", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the descriptor of the socket to the caller")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 <pid>` writes every thread's stack to the caller's log, to debug a stuck session.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    connection = Connection(args.fd)
    try:
        return serve(connection)
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
