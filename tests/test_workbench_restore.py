"""Stored workbench scores: restoring them into a new session and writing them concurrently."""

from __future__ import annotations

import textwrap
import threading

from test_workbench_support import EventRecorder, make_store
from tui_eval.entities.assessment import Feedback
from tui_eval.store import Store
from tui_eval.workbench import GenerationFinished, ResultsRestored, Session
from tui_eval.workbench.persist import load_traces, write_generation
from tui_eval.workbench.results import CELL_NAME, CELL_SCORER, GENERATION_KEY, MODULE_HASH_KEY, cell_from_feedback

TRACES = 4


def test_rows_without_scorer_key_restore_under_their_name(tmp_path):
    path = tmp_path / "traces.db"
    ids = make_store(path, TRACES)
    # Rows as a workbench wrote them before rows carried the scorer key: a Feedback without
    # a name or source gets the scorer's name and source id "default".
    metadata = {GENERATION_KEY: "3", MODULE_HASH_KEY: "0" * 64}
    with Store(path) as store:
        store.log_assessments(
            Feedback(name="brevity", value="yes", trace_id=trace_id, metadata=dict(metadata)) for trace_id in ids
        )

    loaded = load_traces(path, ids)

    assert loaded.restored_generation == 3
    cells = [cell for trace_id in ids for cell in loaded.restored[trace_id]]
    assert [cell[CELL_NAME] for cell in cells] == ["brevity"] * TRACES
    assert [cell[CELL_SCORER] for cell in cells] == ["brevity"] * TRACES


NONE_SCORERS = textwrap.dedent(
    """
    from tui_eval.genai.scorers import scorer

    @scorer
    def always(outputs):
        return 1

    @scorer
    def nothing(outputs):
        return None
    """
)


def test_none_results_are_restored_as_none(tmp_path):
    path = tmp_path / "traces.db"
    ids = make_store(path, TRACES)
    module = tmp_path / "scorers.py"
    module.write_text(NONE_SCORERS)
    with Session(path, module, watch=False) as session:
        recorder = EventRecorder()
        session.subscribe(recorder)
        first = recorder.wait_for(lambda event: isinstance(event, GenerationFinished))
        assert session.wait_idle(20, include_writes=True)
    assert first.counts["nothing"]["n_none"] == TRACES

    recorder = EventRecorder()
    session = Session(path, module, watch=False)
    session.subscribe(recorder)
    session.start()
    try:
        restored = recorder.wait_for(lambda event: isinstance(event, ResultsRestored))
        second = recorder.wait_for(lambda event: isinstance(event, GenerationFinished))
    finally:
        session.stop()

    assert [restored.results.none_names(trace_id) for trace_id in ids] == [("nothing",)] * TRACES
    assert restored.counts["nothing"]["n_none"] == TRACES
    assert second.diff.scorers_appeared == ()
    assert second.diff.scorers_vanished == ()
    assert not second.diff.any_change


def test_concurrent_writers_leave_one_generation_valid(tmp_path):
    # Two sessions on one store (the TUI and `score --watch`) write after the same save. However
    # their transactions interleave, one generation's scores must stay valid on every trace.
    path = tmp_path / "traces.db"
    ids = make_store(path, 200)
    names = [f"check_{number}" for number in range(30)]
    cells = [cell_from_feedback(Feedback(name=name, value="yes"), "n_other", name) for name in names]

    def payload(token: str, generation: int) -> dict:
        return {
            "generation": generation,
            "module_hash": "0" * 64,
            "create_time_ms": 0,
            "token": token,
            "rows": [(trace_id, cells) for trace_id in ids],
            "names": names,
        }

    for attempt in range(3):
        barrier = threading.Barrier(2)

        def write(token: str, generation: int) -> None:
            barrier.wait()
            write_generation(path, payload(token, generation))

        writers = [
            threading.Thread(target=write, args=(f"{attempt:06x}aaaaaa", 2 * attempt + 1)),
            threading.Thread(target=write, args=(f"{attempt:06x}bbbbbb", 2 * attempt + 2)),
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()

        with Store(path) as store:
            valid = store.search_traces(filter_string="feedback.check_0 = 'yes'", include_spans=False)
        assert len(valid) == len(ids), f"attempt {attempt}"
