"""The zygote: a process that loads a session's traces once and forks ready workers from itself.

Run by a session as ``python -P -m tui_eval.workbench.zygote --control-fd N --data-fd M``.
It reads its configuration from the data connection, loads the traces read-only, reports them on
the data connection, then forks a child per ``MSG_FORK`` request. Children inherit the loaded
items copy-on-write, so a fresh worker is ready in milliseconds whatever the number of traces.
The zygote reaps its children and reports how each one ended. When the session goes away
(end of file on the control socket), it kills every child and exits.

The zygote stays single-threaded, because ``fork`` copies only the calling thread, and it never
imports user code, so every worker's import of the scorer module is a first import.

NOTE: this needs POSIX (``os.fork``, descriptor passing over Unix sockets); it runs on Linux
and is untested on macOS. Windows has neither, so the workbench does not run there.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import pickle
import selectors
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from tui_eval.workbench import protocol
from tui_eval.workbench.persist import build_traces

logger = logging.getLogger(__name__)

# Scheduling niceness added to writer processes.
_WRITER_NICENESS = 10
# Seconds of Trace building between two looks at the control socket, which bounds how long a
# fork request may wait.
_BUILD_SLICE_S = 0.02
# Largest control message and number of descriptors one fork request may carry.
_MAX_CONTROL_BYTES = 1 << 16
_MAX_FDS = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tui_eval.workbench.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--data-fd", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    control = socket.socket(fileno=args.control_fd)
    data = Connection(args.data_fd)
    try:
        message = data.recv()
    except EOFError:
        return 2
    if message[0] != protocol.MSG_CONFIGURE:
        return 2
    config: dict[str, Any] = message[1]
    logging.getLogger().setLevel(config.get("log_level", logging.WARNING))

    from tui_eval.workbench.persist import load_traces

    started = time.monotonic()
    try:
        loaded = load_traces(config["store_path"], config["trace_ids"])
    except Exception as exc:  # noqa: BLE001 - reported to the session, which raises it
        logger.debug("loading traces failed", exc_info=True)
        data.send((protocol.MSG_TRACES_FAILED, f"{type(exc).__name__}: {exc}"))
        return 1
    # Import now what every worker needs, so no worker pays for it.
    import tui_eval.genai.aggregation  # noqa: F401
    import tui_eval.genai.scoring  # noqa: F401
    import tui_eval.tracing.encoding  # noqa: F401
    import tui_eval.workbench.results  # noqa: F401
    import tui_eval.workbench.worker  # noqa: F401

    data.send(
        (
            protocol.MSG_TRACES_LOADED,
            {
                "trace_ids": loaded.trace_ids,
                "restored": loaded.restored,
                "restored_none": loaded.restored_none,
                "restored_generation": loaded.restored_generation,
                "restored_module_hash": loaded.restored_module_hash,
                "restored_ids": loaded.restored_ids,
                "stale_ids": loaded.stale_ids,
                "missing": loaded.missing,
                "load_s": time.monotonic() - started,
            },
        )
    )
    items = loaded.items
    del loaded
    # Keep the collector away from the loaded objects, so children do not copy every page
    # the first time the collector walks the heap.
    gc.collect()
    gc.freeze()
    return _serve(control, data, items)


def _receive(control: socket.socket) -> tuple[Any, list[int]]:
    """Receive one control message with its descriptors; (None, []) at end of file."""
    try:
        payload, fds, _flags, _address = socket.recv_fds(control, _MAX_CONTROL_BYTES, _MAX_FDS)
    except (ConnectionResetError, OSError):
        return None, []
    if not payload:
        for fd in fds:
            os.close(fd)
        return None, []
    return pickle.loads(payload), list(fds)


def _serve(control: socket.socket, data: Connection, items: list[Any]) -> int:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_write)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    children: dict[int, str] = {}  # pid -> role
    context = (control, data, selector, wake_read, wake_write)
    built = 0
    build_started = time.monotonic()
    try:
        while True:
            # While traces remain to be built, only peek at the sockets between slices of work.
            for key, _mask in selector.select(0 if built < len(items) else None):
                if key.fileobj is control:
                    message, fds = _receive(control)
                    if message is None or message[0] == protocol.MSG_QUIT:
                        return 0
                    if message[0] == protocol.MSG_FORK:
                        _fork(message, fds, items, children, data, context)
                else:
                    try:
                        while os.read(wake_read, 512):
                            pass
                    except BlockingIOError:
                        pass
            _reap(children, data)
            if built < len(items):
                built = build_traces(items, built, _BUILD_SLICE_S)
                gc.freeze()
                if built == len(items):
                    data.send((protocol.MSG_TRACES_BUILT, time.monotonic() - build_started))
    except (BrokenPipeError, ConnectionResetError):
        return 0
    finally:
        # Workers die with the session. Writers finish storing the scores they were given,
        # then exit on their own.
        workers = {pid: role for pid, role in children.items() if role != protocol.ROLE_WRITER}
        for pid in workers:
            _kill_group(pid)
        _reap(workers, None, block=True)


def _fork(
    message: tuple[Any, ...],
    fds: list[int],
    items: list[Any],
    children: dict[int, str],
    data: Connection,
    context: tuple[Any, ...],
) -> None:
    _, key, role = message
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        data.send((protocol.MSG_FORK_FAILED, key, f"fork failed: {exc}"))
        return
    if pid == 0:
        _child(role, fds, items, context)  # never returns
    for fd in fds:
        os.close(fd)
    children[pid] = role
    data.send((protocol.MSG_FORKED, key, pid))


def _child(role: str, fds: list[int], items: list[Any], context: tuple[Any, ...]) -> None:
    code = 0
    try:
        control, data, selector, wake_read, wake_write = context
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        selector.close()
        control.close()
        data.close()
        os.close(wake_read)
        os.close(wake_write)
        os.setpgid(0, 0)
        connection_fd, stdout_fd, stderr_fd, progress_fd = fds
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stdout_fd)
        os.close(stderr_fd)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.reconfigure(line_buffering=True)
        # The zygote's objects stay frozen, so this process's collections never walk (and copy)
        # the pages it shares with the zygote.
        connection = Connection(connection_fd)
        if role == protocol.ROLE_WRITER:
            # Writing scores is background work: let scoring and the user's interface go first.
            os.nice(_WRITER_NICENESS)
            os.close(progress_fd)
            from tui_eval.workbench.persist import serve_writer

            serve_writer(connection)
        else:
            from tui_eval.workbench.worker import Worker

            progress = protocol.ProgressBlock(progress_fd)
            os.close(progress_fd)
            Worker(connection, progress, items).serve()
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass  # The session closed the connection: it no longer needs this child.
    except BaseException:  # noqa: BLE001 - the child must end with os._exit whatever happened
        code = 1
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(code)


def _reap(children: dict[int, str], data: Connection | None, *, block: bool = False) -> None:
    """Reap ended children; with ``block``, wait for every child in ``children``."""
    while children:
        try:
            if block:
                pid = next(iter(children))
                pid, status = os.waitpid(pid, 0)
            else:
                pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.pop(pid, None)
        if data is not None:
            data.send((protocol.MSG_EXITED, pid, protocol.describe_exit_status(status)))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    sys.exit(main())
