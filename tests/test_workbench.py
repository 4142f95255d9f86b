"""The workbench session end to end: real store, real watchfiles, real worker processes."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from test_workbench_support import EventRecorder, make_store, write_module
from tui_eval.store import Store
from tui_eval.workbench import (
    CellChange,
    FilesWatched,
    GenerationCancelled,
    GenerationFinished,
    GenerationStarted,
    ReloadFailed,
    ResultsReceived,
    ResultsRestored,
    Session,
    WorkerOutput,
)
from tui_eval.workbench.results import GENERATION_KEY, MODULE_HASH_KEY

TRACES = 12


def versioned(version: int) -> str:
    return textwrap.dedent(
        f"""
        from tui_eval.genai.scorers import scorer

        @scorer
        def version(outputs):
            return {version}

        @scorer
        def has_fact(outputs, expectations):
            return expectations["expected_fact"].lower() in outputs.lower()
        """
    )


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "traces.db"
    make_store(path, TRACES)
    return path


@pytest.fixture
def open_session(store, tmp_path):
    sessions = []

    def start(source: str, name: str = "scorers.py", **options):
        module = tmp_path / name
        module.write_text(source)
        session = Session(store, module, **options)
        recorder = EventRecorder()
        session.subscribe(recorder)
        session.start()
        sessions.append(session)
        return session, recorder, module

    yield start
    for session in sessions:
        session.stop()


def finished(recorder: EventRecorder, since: int, timeout: float = 20.0) -> GenerationFinished:
    return recorder.wait_for(lambda event: isinstance(event, GenerationFinished), since=since, timeout=timeout)


def failed(recorder: EventRecorder, since: int, timeout: float = 20.0) -> ReloadFailed:
    return recorder.wait_for(lambda event: isinstance(event, ReloadFailed), since=since, timeout=timeout)


def values(session: Session, name: str) -> list:
    return [feedback.value for feedbacks in session.results.values() for feedback in feedbacks if feedback.name == name]


# --- saving ---------------------------------------------------------------------------------


def save_temp_then_rename(module: Path, source: str) -> None:
    temporary = module.with_name(module.name + ".tmp")
    temporary.write_text(versioned(-1))
    time.sleep(0.01)
    temporary.write_text(source)
    os.replace(temporary, module)


def save_jetbrains(module: Path, source: str) -> None:
    temporary = module.with_name(module.name + "___jb_tmp___")
    old = module.with_name(module.name + "___jb_old___")
    temporary.write_text(source)
    os.replace(module, old)
    os.replace(temporary, module)
    old.unlink()


def save_vim(module: Path, source: str) -> None:
    swap = module.with_name("." + module.name + ".swp")
    swap.write_text(versioned(-1))
    probe = module.with_name("4913")
    probe.write_text("")
    probe.unlink()
    backup = module.with_name(module.name + "~")
    os.replace(module, backup)
    module.write_text(source)
    backup.unlink()
    swap.unlink()


def save_in_two_chunks(module: Path, source: str) -> None:
    half = len(source) // 2
    with module.open("w") as handle:
        handle.write(source[:half])
        handle.flush()
        time.sleep(0.03)
        handle.write(source[half:])


def test_every_save_style_reloads_once(open_session):
    session, recorder, module = open_session(versioned(0))
    first = finished(recorder, 0)
    assert first.scorer_names == ("version", "has_fact")
    assert values(session, "version") == [0] * TRACES

    styles = [write_module, save_temp_then_rename, save_jetbrains, save_vim, save_in_two_chunks]
    for version, save in enumerate(styles, start=1):
        mark = recorder.mark()
        save(module, versioned(version))
        event = finished(recorder, mark)
        later = recorder.quiet_for(0.5, since=mark)

        started = [item for item in later if isinstance(item, GenerationStarted)]
        assert len(started) == 1, f"{save.__name__}: {len(started)} reloads"
        assert not [item for item in later if isinstance(item, ReloadFailed)], save.__name__
        assert event.metrics["version/mean"] == version, save.__name__
        assert values(session, "version") == [version] * TRACES, save.__name__
        assert all(path.suffix == ".py" for path in session.watched_files)
    assert -1 not in values(session, "version")


def test_quick_saves_publish_last_final(open_session):
    session, recorder, module = open_session(versioned(0))
    finished(recorder, 0)

    mark = recorder.mark()
    write_module(module, versioned(1))
    time.sleep(0.02)
    write_module(module, versioned(2))
    recorder.wait_for(lambda e: isinstance(e, GenerationFinished) and e.final and e.metrics.get("version/mean") == 2, since=mark)
    later = recorder.quiet_for(0.5, since=mark)

    finals = [e for e in later if isinstance(e, GenerationFinished) and e.final]
    assert [e.metrics["version/mean"] for e in finals] == [2]
    assert values(session, "version") == [2] * TRACES


def test_newer_save_cancels_running_generation(open_session):
    slow = versioned(1) + "\nimport time\n\n@scorer\ndef slow(outputs):\n    time.sleep(0.2)\n    return 1\n"
    session, recorder, module = open_session(versioned(0))
    finished(recorder, 0)

    mark = recorder.mark()
    write_module(module, slow)
    recorder.wait_for(lambda e: isinstance(e, ResultsReceived), since=mark)
    write_module(module, versioned(2))
    event = recorder.wait_for(lambda e: isinstance(e, GenerationFinished) and e.final, since=mark)
    later = recorder.quiet_for(0.3, since=mark)

    cancelled = [e.generation for e in later if isinstance(e, GenerationCancelled)]
    started = [e.generation for e in later if isinstance(e, GenerationStarted)]
    assert cancelled == [started[0]]
    assert event.generation == started[-1]
    assert [e.generation for e in later if isinstance(e, GenerationFinished)] == [started[-1]]
    assert event.metrics["version/mean"] == 2
    assert "slow" not in event.scorer_names


# --- helpers and scorers --------------------------------------------------------------------


def test_editing_helper_recomputes_and_removing_scorer_drops_column(open_session, tmp_path):
    (tmp_path / "helpers.py").write_text("def normalize(text):\n    return text.lower()\n")
    source = textwrap.dedent(
        """
        from helpers import normalize
        from tui_eval.genai.scorers import scorer

        @scorer
        def shouts(outputs):
            return normalize(outputs).isupper()

        @scorer
        def length(outputs):
            return len(outputs)
        """
    )
    session, recorder, module = open_session(source)
    first = finished(recorder, 0)
    assert first.metrics["shouts/mean"] == 0.0
    watched = recorder.wait_for(lambda e: isinstance(e, FilesWatched) and len(e.paths) == 2)
    assert set(watched.paths) == {module, tmp_path / "helpers.py"}

    mark = recorder.mark()
    write_module(tmp_path / "helpers.py", "def normalize(text):\n    return text.upper()\n")
    second = finished(recorder, mark)
    assert second.metrics["shouts/mean"] == 1.0
    assert second.diff.changed == TRACES
    assert second.diff.cell(session.trace_ids[0], "length") is CellChange.UNCHANGED

    mark = recorder.mark()
    write_module(module, source.split("@scorer\ndef length")[0])
    third = finished(recorder, mark)
    assert third.scorer_names == ("shouts",)
    assert third.diff.scorers_vanished == ("length",)
    assert third.diff.removed == TRACES
    assert not any(f.name == "length" for feedbacks in session.results.values() for f in feedbacks)


def test_module_without_scorers_is_a_clear_state(open_session):
    session, recorder, _module = open_session("X = 1\n")

    event = finished(recorder, 0)

    assert event.scorer_names == ()
    assert event.metrics == {}
    assert session.last_error is None
    assert all(feedbacks == [] for feedbacks in session.results.values())


# --- errors ---------------------------------------------------------------------------------


def test_errors_keep_last_scores_until_fixed(open_session):
    session, recorder, module = open_session(versioned(1))
    finished(recorder, 0)

    mark = recorder.mark()
    broken = versioned(2) + "\ndef broken(:\n    pass\n"
    write_module(module, broken)
    error = failed(recorder, mark)
    assert error.path == module
    assert error.line == broken.splitlines().index("def broken(:") + 1
    assert "SyntaxError" in error.message
    assert session.stale
    assert values(session, "version") == [1] * TRACES

    mark = recorder.mark()
    raising = versioned(3) + "\nRATIO = 1 / 0\n"
    write_module(module, raising)
    error = failed(recorder, mark)
    assert error.path == module
    assert error.line == raising.splitlines().index("RATIO = 1 / 0") + 1
    assert error.message == "ZeroDivisionError: division by zero"
    assert "RATIO = 1 / 0" in error.traceback
    assert "importlib" not in error.traceback
    assert session.stale
    assert values(session, "version") == [1] * TRACES

    mark = recorder.mark()
    write_module(module, versioned(4) + "\n@scorer\ndef typo(outputs):\n    return undefined_name\n")
    event = finished(recorder, mark)
    assert not session.stale
    assert session.last_error is None
    typo_cells = [f for feedbacks in session.results.values() for f in feedbacks if f.name == "typo"]
    assert len(typo_cells) == TRACES
    assert all(f.error.error_code == "SCORER_ERROR" for f in typo_cells)
    assert all("NameError" in f.error.error_message for f in typo_cells)
    assert event.counts["typo"]["n_error"] == TRACES

    mark = recorder.mark()
    write_module(module, versioned(5) + "\n@scorer\ndef typo(outputs):\n    return len(outputs) > 0\n")
    event = finished(recorder, mark)
    assert event.counts["typo"]["n_error"] == 0
    assert event.diff.changed == 2 * TRACES
    assert values(session, "typo") == [True] * TRACES


def test_zygote_death_restarts_and_rescores(open_session):
    session, recorder, module = open_session(versioned(1))
    finished(recorder, 0)
    first_zygote = session.zygote_pid

    mark = recorder.mark()
    os.kill(first_zygote, signal.SIGKILL)
    event = finished(recorder, mark)
    assert session.zygote_pid not in (None, first_zygote)
    assert event.metrics["version/mean"] == 1

    mark = recorder.mark()
    write_module(module, versioned(2))
    event = finished(recorder, mark)
    assert event.metrics["version/mean"] == 2


def test_deleted_module_fails_and_recreated_module_recovers(open_session):
    session, recorder, module = open_session(versioned(1), settle_ms=200)
    finished(recorder, 0)

    mark = recorder.mark()
    module.unlink()
    error = failed(recorder, mark)
    assert "cannot read the scorer module" in error.message
    assert values(session, "version") == [1] * TRACES

    mark = recorder.mark()
    module.write_text(versioned(2))
    event = finished(recorder, mark)
    assert event.metrics["version/mean"] == 2


def test_missing_helper_recovers_on_creation(open_session, tmp_path):
    source = "from later_helper import VALUE\nfrom tui_eval.genai.scorers import scorer\n\n@scorer\ndef value(outputs):\n    return VALUE\n"
    session, recorder, _module = open_session(source)
    error = failed(recorder, 0)
    assert "ModuleNotFoundError" in error.message
    assert error.line == 1

    mark = recorder.mark()
    (tmp_path / "later_helper.py").write_text("VALUE = 7\n")
    event = finished(recorder, mark)
    assert event.metrics["value/mean"] == 7


# --- containment ------------------------------------------------------------------------------


CONTAINMENT = textwrap.dedent(
    """
    import ctypes
    import os
    import sys
    import time
    from tui_eval.genai.scorers import scorer

    def ticket(inputs):
        return int(inputs["messages"][-1]["content"].rsplit(" ", 1)[-1].rstrip(")"))

    @scorer
    def steady(outputs):
        return len(outputs)

    @scorer
    def hangs(inputs):
        if ticket(inputs) == 1:
            while True:
                time.sleep(1)
        return True

    @scorer
    def exits(inputs):
        if ticket(inputs) == 2:
            os._exit(3)
        if ticket(inputs) == 3:
            sys.exit(4)
        return True

    @scorer
    def segfaults(inputs):
        if ticket(inputs) == 4:
            ctypes.string_at(0)
        return True

    @scorer
    def chatty(inputs):
        if ticket(inputs) == 5:
            for number in range(10_000):
                print("line", number)
            print("to stderr", file=sys.stderr)
        return True

    @scorer
    def hungry(inputs):
        if ticket(inputs) == 6:
            blocks, size = [], 1024 * 1024
            while True:
                blocks.append(bytearray(size))
                size *= 2
        return True
    """
)


def test_misbehaving_scorers_cost_only_their_cells(open_session):
    session, recorder, _module = open_session(
        CONTAINMENT, timeout=2.0, memory_limit_mb=128, max_output_lines=20_000
    )

    event = finished(recorder, 0, timeout=60)

    by_ticket = {}
    for trace_id, feedbacks in session.results.items():
        ticket = int(trace_id[-8:], 16)
        by_ticket[ticket] = {f.name: f for f in feedbacks}
    assert len(by_ticket) == TRACES
    assert all(cells["steady"].value > 0 for cells in by_ticket.values())
    assert by_ticket[1]["hangs"].error.error_code == "SCORER_TIMEOUT"
    assert by_ticket[1]["hangs"].error.error_message == "timed out after 2 s"
    assert "exit code 3" in by_ticket[2]["exits"].error.error_message
    assert by_ticket[2]["exits"].error.error_code == "SCORER_CRASHED"
    assert by_ticket[3]["exits"].error.error_code == "SCORER_ERROR"
    assert "SystemExit" in by_ticket[3]["exits"].error.error_message
    assert "SIGSEGV" in by_ticket[4]["segfaults"].error.error_message
    assert "MemoryError" in by_ticket[6]["hungry"].error.error_message
    for ticket, cells in by_ticket.items():
        assert set(cells) == {"steady", "hangs", "exits", "segfaults", "chatty", "hungry"}, ticket
    healthy = [cells for ticket, cells in by_ticket.items() if ticket not in (1, 2, 3, 4, 6)]
    assert all(cells[name].value is True for cells in healthy for name in ("hangs", "exits", "segfaults", "hungry"))
    assert event.counts["steady"]["n_scored"] == TRACES

    output = [e for e in recorder.of_type(WorkerOutput) if e.generation == event.generation]
    stdout = [e.line for e in output if e.stream == "stdout"]
    assert len(stdout) == 10_000
    assert stdout[0] == "line 0"
    assert stdout[-1] == "line 9999"
    assert [e.line for e in output if e.stream == "stderr"] == ["to stderr"]


def test_output_beyond_the_cap_is_counted_not_published(open_session):
    source = "from tui_eval.genai.scorers import scorer\n\n@scorer\ndef talk(outputs):\n    print('x' * 10)\n    return 1\n"
    _session, recorder, _module = open_session(source, max_output_lines=5)

    event = finished(recorder, 0)

    lines = [e.line for e in recorder.of_type(WorkerOutput) if e.generation == event.generation]
    assert lines[:5] == ["x" * 10] * 5
    assert lines[5:] == [f"[tui_eval: {TRACES - 5} more output lines were dropped]"]


def test_module_level_hang_times_out_import(open_session):
    source = "import time\nwhile True:\n    time.sleep(1)\n"
    session, recorder, _module = open_session(source, import_timeout=1.0)

    error = failed(recorder, 0)

    assert error.message == "importing the module timed out after 1 s"
    assert session.stale


# --- order, persistence --------------------------------------------------------------------


def test_visible_traces_are_scored_first(store, tmp_path):
    path = tmp_path / "many.db"
    ids = make_store(path, 400)
    module = tmp_path / "scorers.py"
    module.write_text("import time\nfrom tui_eval.genai.scorers import scorer\n\n@scorer\ndef slow(outputs):\n    time.sleep(0.001)\n    return 1\n")
    visible = ids[:10]  # the store lists newest first, so these come last by default
    # One worker, so the order is the dispatch order and not a race between two processes.
    session = Session(path, module, watch=False, workers=1)
    recorder = EventRecorder()
    session.subscribe(recorder)
    session.set_visible(visible)
    session.start()
    try:
        first = recorder.wait_for(lambda e: isinstance(e, ResultsReceived))
        finished(recorder, 0)
    finally:
        session.stop()

    assert set(first.results) == set(visible)


def test_results_are_stored_and_restored(store, tmp_path):
    module = tmp_path / "scorers.py"
    module.write_text(versioned(1))
    with Session(store, module, watch=False) as session:
        recorder = EventRecorder()
        session.subscribe(recorder)
        first = finished(recorder, 0)
        mark = recorder.mark()
        module.write_text(versioned(2))
        session.rescore()
        second = finished(recorder, mark)
        assert session.wait_idle(20, include_writes=True)
    assert second.generation == first.generation + 1

    with Store(store) as opened:
        traces = opened.search_traces()
    for trace in traces:
        feedback = [a for a in trace.info.assessments if getattr(a, "name", None) == "version"]
        valid = [a for a in feedback if a.valid is not False]
        assert [a.value for a in valid] == [2]
        assert valid[0].metadata[GENERATION_KEY] == str(second.generation)
        assert len(valid[0].metadata[MODULE_HASH_KEY]) == 64
        assert len(feedback) <= 2

    recorder = EventRecorder()
    session = Session(store, module, watch=False)
    session.subscribe(recorder)
    session.start()
    try:
        restored = recorder.wait_for(lambda e: isinstance(e, ResultsRestored))
        third = finished(recorder, 0)
    finally:
        session.stop()
    kinds = [type(e) for _, e in recorder.events]
    assert kinds.index(ResultsRestored) < kinds.index(GenerationStarted)
    assert restored.generation == second.generation
    assert len(restored.results) == TRACES
    assert {f.value for fs in restored.results.values() for f in fs if f.name == "version"} == {2}
    assert third.generation == second.generation + 1
    assert third.diff.previous_generation == second.generation
    assert third.diff.unchanged == 2 * TRACES
    assert third.diff.scorers_appeared == ()
    assert third.diff.scorers_vanished == ()


def test_restoring_last_good_module_clears_error(open_session):
    session, recorder, module = open_session(versioned(1))
    finished(recorder, 0)

    mark = recorder.mark()
    write_module(module, versioned(1) + "\ndef broken(:\n    pass\n")
    failed(recorder, mark)
    assert session.stale

    mark = recorder.mark()
    write_module(module, versioned(1))
    event = finished(recorder, mark)

    assert not session.stale
    assert session.last_error is None
    assert event.diff.unchanged == 2 * TRACES
    assert values(session, "version") == [1] * TRACES
