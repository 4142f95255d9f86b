"""The store shared by real processes: crashes mid-trace and mid-write, concurrent readers and writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import textwrap

import pytest

from tui_eval.entities.trace_state import TraceState
from tui_eval.store import INCOMPLETE_KEY, Store

from test_store_helpers import PYTHON, REPO_ROOT, make_trace, subprocess_env

# --- an app killed while its trace is open ------------------------------------------------

OPEN_TRACE_APP = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from test_store_helpers import make_trace
    from tui_eval.store import Store

    store = Store(sys.argv[1])
    trace = make_trace(name="killed_app")
    store.begin_trace(trace.info, os.getpid())
    print(trace.info.trace_id, flush=True)
    time.sleep(60)
    """
)


def test_app_killed_with_open_trace_shows_incomplete(tmp_path):
    path = tmp_path / "store.db"
    app = subprocess.Popen(
        [PYTHON, "-c", OPEN_TRACE_APP, str(path), str(REPO_ROOT / "tests")],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        trace_id = app.stdout.readline().strip()
        assert trace_id.startswith("tr-")
        with Store(path) as store:
            assert store.list_summaries()[0].state == "IN_PROGRESS"
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
        app.stdout.close()
    with Store(path) as store:
        [summary] = store.list_summaries()
        assert summary.trace_id == trace_id
        assert summary.state == "ERROR"
        trace = store.get_trace(trace_id)
        assert trace.info.state == TraceState.ERROR
        reason = trace.info.trace_metadata[INCOMPLETE_KEY]
        assert f"pid {app.pid}" in reason
        assert "ended before the trace finished" in reason
    with Store(path) as store:
        assert store.get_trace(trace_id).info.trace_metadata[INCOMPLETE_KEY] == reason


# --- a writer SIGKILLed at random points --------------------------------------------------


def _writer(path: str, report_fd: int, seed: int) -> None:
    """Write traces of random sizes forever, reporting each committed trace id on ``report_fd``."""
    rng = random.Random(seed)
    store = Store(path)
    index = 0
    while True:
        index += 1
        count = rng.randint(1, 40)
        batch = [
            make_trace(
                index * 100 + item,
                span_count=count,
                outputs="x" * rng.choice([10, 1000, 50_000]),
                metadata={"expected_spans": str(count)},
                tags={"writer": str(seed)},
            )
            for item in range(rng.choice([1, 1, 5]))
        ]
        if len(batch) == 1:
            store.log_trace(batch[0])
        else:
            store.log_traces(batch)
        os.write(report_fd, "".join(f"{trace.info.trace_id}\n" for trace in batch).encode())


def _forked_writer(path: str, report_fd: int, seed: int) -> None:
    try:
        _writer(path, report_fd, seed)
    finally:
        os._exit(1)


def test_writer_killed_at_random_points_leaves_whole_traces(tmp_path):
    path = tmp_path / "store.db"
    context = multiprocessing.get_context("fork")
    rng = random.Random(20)
    committed: set[str] = set()
    for round_number in range(20):
        read_fd, write_fd = os.pipe()
        writer = context.Process(target=_forked_writer, args=(str(path), write_fd, round_number))
        writer.start()
        os.close(write_fd)
        # The early kills land while the store is being created or opened.
        time.sleep(rng.uniform(0.0, 0.05) if round_number < 3 else rng.uniform(0.05, 0.25))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=10)
        assert writer.exitcode == -signal.SIGKILL
        reported = b""
        while chunk := os.read(read_fd, 65536):
            reported += chunk
        os.close(read_fd)
        # Only complete lines name traces whose transaction committed before the kill.
        committed.update(line for line in reported.decode().split("\n")[:-1] if line)

        with Store(path) as store:
            connection = store._connection
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            rows = connection.execute(
                "SELECT t.trace_id, t.span_count, json_array_length(t.spans_json), "
                "(SELECT COUNT(*) FROM spans s WHERE s.trace_id = t.trace_id), "
                "(SELECT value FROM trace_metadata m WHERE m.trace_id = t.trace_id AND m.key = 'expected_spans') "
                "FROM traces t"
            ).fetchall()
            for trace_id, span_count, json_spans, span_rows, expected in rows:
                assert span_count == json_spans == span_rows == int(expected), trace_id
            stored = {row[0] for row in rows}
            assert committed <= stored, f"round {round_number}: committed traces lost"
    assert len(committed) > 20


# --- concurrent readers and writers -------------------------------------------------------

WRITER_PROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from test_store_helpers import make_trace
    from tui_eval.store import Store

    store = Store(sys.argv[1])
    name = sys.argv[2]
    for index in range(100):
        store.log_trace(make_trace(index, tags={"writer": name}, span_count=8))
    store.log_traces(make_trace(1000 + index, tags={"writer": name}) for index in range(100))
    print("done", flush=True)
    """
)

READER_PROCESS = textwrap.dedent(
    """
    import os, sys, time
    from tui_eval.store import Store

    store = Store(sys.argv[1])
    stop_file = sys.argv[2]
    reads = 0
    seen = 0
    while not os.path.exists(stop_file):
        summaries = store.list_summaries(limit=50)
        traces = store.search_traces(max_results=20)
        count = store.count_traces("tags.writer = 'a'")
        assert all(len(trace.data.spans) in (5, 8) for trace in traces)
        assert count >= seen
        seen = count
        reads += 1
    print("reads", reads, flush=True)
    """
)


def test_two_writers_and_a_reader_never_see_locked(tmp_path):
    path = tmp_path / "store.db"
    Store(path).close()
    stop_file = tmp_path / "stop"
    env = subprocess_env()
    tests_dir = str(REPO_ROOT / "tests")
    reader = subprocess.Popen(
        [PYTHON, "-c", READER_PROCESS, str(path), str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    writers = [
        subprocess.Popen(
            [PYTHON, "-c", WRITER_PROCESS, str(path), name, tests_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    try:
        outputs = [writer.communicate(timeout=120) for writer in writers]
    finally:
        stop_file.touch()
    reader_out, reader_err = reader.communicate(timeout=60)
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    assert reader.returncode == 0, reader_err
    assert "locked" not in reader_err
    assert int(reader_out.split()[1]) > 0
    with Store(path) as store:
        assert store.count_traces() == 400
        assert store.count_traces("tags.writer = 'a'") == 200
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.close()


def test_store_in_forked_child_uses_its_own_connection(tmp_path):
    store = Store(tmp_path / "store.db")
    store.log_trace(make_trace(0))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        store.log_trace(make_trace(1))
        queue.put(store.count_traces())

    process = context.Process(target=child)
    process.start()
    process.join(timeout=30)
    assert process.exitcode == 0
    assert queue.get(timeout=5) == 2
    assert store.count_traces() == 2
    store.close()


@pytest.mark.skipif(sys.platform != "linux", reason="pid start times come from /proc")
def test_reused_pid_counts_as_dead(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "store.db") as store:
        store.begin_trace(trace.info, os.getpid())
        store._connection.execute("UPDATE traces SET writer_started = writer_started + 1")
    with Store(tmp_path / "store.db") as store:
        assert store.get_trace(trace.info.trace_id).info.state == TraceState.ERROR
