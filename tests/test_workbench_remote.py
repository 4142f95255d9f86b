"""A workbench session in its own process: events relayed, errors raised here, either side's death handled."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from test_workbench_support import EventRecorder, make_store, write_module
from tui_eval.errors import ScorerLoadError, StoreError
from tui_eval.workbench import GenerationFinished, GenerationStarted, ReloadFailed, ResultsReceived, ResultTable
from tui_eval.workbench.remote import RemoteSession

REPO = Path(__file__).resolve().parents[1]

SCORERS = textwrap.dedent(
    """
    from tui_eval.genai.scorers import scorer


    @scorer
    def version(outputs):
        return {version}


    @scorer
    def has_ticket(outputs):
        print("scored", str(outputs)[:10])
        return "Ticket" in str(outputs)
    """
)


def wait_until(condition, timeout: float = 20.0, description: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{description} did not happen within {timeout} s"
        time.sleep(0.02)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # kill(0) still succeeds on a zombie, which has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "traces.db"
    make_store(path, 40)
    return path


def test_remote_events_relayed_and_save_rescores(store, tmp_path):
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    recorder = EventRecorder()
    session = RemoteSession(store, module)
    session.subscribe(recorder)
    session.start()
    try:
        assert session.pid is not None and session.pid != os.getpid()
        first = recorder.wait_for(lambda event: isinstance(event, GenerationFinished), timeout=60)
        assert first.final and first.counts["version"]["n_scored"] == 40
        batches = recorder.of_type(ResultsReceived)
        # Each batch is a table of its own traces only, not the session's whole table.
        assert all(isinstance(batch.results, ResultTable) for batch in batches)
        assert sum(len(batch.results) for batch in batches) == 40
        assert all(len(batch.results) <= batch.done for batch in batches)
        first_batch = batches[0].results
        trace_id = next(iter(first_batch))
        assert {feedback.name for feedback in first_batch[trace_id]} == {"version", "has_ticket"}
        assert first.diff.cells == {}
        assert first.diff.new == 80

        mark = recorder.mark()
        write_module(module, SCORERS.format(version=2))
        started = recorder.wait_for(lambda event: isinstance(event, GenerationStarted), since=mark, timeout=30)
        assert started.reason == "change"
        second = recorder.wait_for(lambda event: isinstance(event, GenerationFinished), since=mark, timeout=60)
        # Every trace's version changed; the counts survive the trip, the per-cell map does not.
        assert second.diff.changed == 40
        assert len(second.diff.changed_trace_ids) == 40
        assert second.metrics["version/mean"] == 2.0

        mark = recorder.mark()
        session.rescore()
        rescored = recorder.wait_for(lambda event: isinstance(event, GenerationStarted), since=mark, timeout=30)
        assert rescored.reason == "rescore"
        recorder.wait_for(lambda event: isinstance(event, GenerationFinished), since=mark, timeout=60)
    finally:
        session.stop()
    assert not process_exists(session.pid)


def test_remote_host_log_reaches_caller(store, tmp_path, caplog):
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    recorder = EventRecorder()
    caplog.set_level(logging.INFO, logger="tui_eval")
    with RemoteSession(store, module) as session:
        session.subscribe(recorder)
        recorder.wait_for(lambda event: isinstance(event, GenerationFinished), timeout=60)
    messages = [(record.name, record.getMessage()) for record in caplog.records]
    assert ("tui_eval.workbench.session", f"workbench session started on {module} with 40 traces") in messages
    assert any(name == "tui_eval.workbench.session" and "stopped" in text for name, text in messages)


def test_remote_start_errors_keep_their_type(store, tmp_path):
    missing = tmp_path / "nowhere.py"
    session = RemoteSession(store, missing)
    with pytest.raises(ScorerLoadError, match="nowhere.py not found"):
        session.start()
    # The host that reported the error is gone, and the caller's threads with it.
    assert not process_exists(session.pid)
    wait_until(lambda: not any(thread.name.startswith("tui_eval-host") for thread in threading.enumerate()), timeout=10, description="the host threads' end")
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    with pytest.raises(StoreError, match="absent.db not found"):
        RemoteSession(tmp_path / "absent.db", module).start()


def test_remote_killed_host_reported(store, tmp_path):
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    recorder = EventRecorder()
    session = RemoteSession(store, module)
    session.subscribe(recorder)
    session.start()
    try:
        recorder.wait_for(lambda event: isinstance(event, GenerationFinished), timeout=60)
        os.kill(session.pid, signal.SIGKILL)
        failure = recorder.wait_for(lambda event: isinstance(event, ReloadFailed), timeout=20)
        assert failure.generation == 0
        assert "workbench process stopped unexpectedly (signal SIGKILL)" in failure.message
        assert "restart tui-eval" in failure.message
        # Calls on a dead session do nothing rather than raise.
        session.set_visible(["tr-x"])
        session.rescore()
    finally:
        session.stop()


def test_remote_host_exits_when_caller_killed(store, tmp_path):
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    caller = tmp_path / "caller.py"
    caller.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from tui_eval.workbench.remote import RemoteSession
            session = RemoteSession({str(store)!r}, {str(module)!r})
            session.start()
            print(session.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(caller)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        host_pid = int(process.stdout.readline())
        assert process_exists(host_pid)
        process.kill()
        process.wait(10)
        wait_until(lambda: not process_exists(host_pid), timeout=30, description="the host's exit")
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_remote_set_visible_during_start(store, tmp_path):
    module = tmp_path / "scorers.py"
    write_module(module, SCORERS.format(version=1))
    recorder = EventRecorder()
    session = RemoteSession(store, module)
    session.subscribe(recorder)
    visible = [f"tr-{number:032x}" for number in (39, 38, 37)]
    started = threading.Event()

    def follow_cursor() -> None:
        # The TUI calls set_visible from its own thread whenever the cursor moves, start or not.
        while not started.is_set():
            session.set_visible(visible)
            time.sleep(0.0002)

    mover = threading.Thread(target=follow_cursor)
    mover.start()
    try:
        session.start()
    finally:
        started.set()
        mover.join()
    try:
        recorder.wait_for(lambda event: isinstance(event, GenerationFinished), timeout=60)
        assert not recorder.of_type(ReloadFailed)
    finally:
        session.stop()
