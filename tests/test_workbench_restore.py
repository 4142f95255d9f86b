"""Restoring stored workbench scores and reloading after errors: real store, real processes."""

from __future__ import annotations

from test_workbench_support import make_store
from tui_eval.entities.assessment import Feedback
from tui_eval.store import Store
from tui_eval.workbench.persist import load_traces
from tui_eval.workbench.results import CELL_NAME, CELL_SCORER, GENERATION_KEY, MODULE_HASH_KEY

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
