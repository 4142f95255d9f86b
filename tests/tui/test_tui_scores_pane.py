"""The scores pane redraws in place when a row's scores take as many lines as the last ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import rich_text, screen_text, wait_for, wait_loaded
from tui_eval.entities import Feedback
from tui_eval.genai.aggregation import classify_value
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.trace_list import TraceList
from tui_eval.workbench.events import GenerationFinished, GenerationStarted, ResultsReceived
from tui_eval.workbench.results import ResultTable, cell_from_feedback
from tui_fixtures import trace_id

pytestmark = pytest.mark.anyio

WIDE = (160, 48)


def results() -> ResultTable:
    table = ResultTable(1, "hash")
    for index in range(12):
        # Trace 10 has a rationale of many lines; the others one line.
        rationale = "\n".join(f"reason line {line} of trace {index}" for line in range(6)) if index == 10 else f"short {index}"
        feedback = Feedback("judge", index % 2 == 0, rationale=rationale)
        table.add(trace_id(index), [cell_from_feedback(feedback, classify_value(feedback))])
    return table


async def test_scores_pane_follows_rows_of_any_height(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        assert await wait_loaded(pilot)
        screen = app.screen
        for event in (
            GenerationStarted(1, Path("scorers.py"), 12),
            ResultsReceived(1, results(), 12, 12),
            GenerationFinished(1, {}, {}, None, 0.1, True),
        ):
            screen._session_event(event)
        assert await wait_for(pilot, lambda: screen.painted_generation == 1)
        trace_list = screen.query_one(TraceList)
        body = screen.query_one("#scores-body")
        # Newest first: rows 0, 1 and 2 are traces 11, 10 and 9.
        for key, index in (("j", 10), ("j", 9), ("k", 10), ("g", 11), ("j", 10)):
            await pilot.press(key)
            assert trace_list.current_row.trace_id == trace_id(index)
            assert await wait_for(pilot, lambda: f"trace {index}" in rich_text(body.content) or f"short {index}" in rich_text(body.content), timeout=5)
            await pilot.pause(0.1)
            shown = screen_text(app)
            if index == 10:
                # Every line of the long rationale is on screen, not cut at the old height.
                assert "reason line 5 of trace 10" in shown
            else:
                assert f"short {index}" in shown
                assert "reason line" not in shown
