"""Background work on the UI thread (results, statistics) gives way to keys for a moment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import wait_for, wait_loaded
from tui_eval.entities import Feedback
from tui_eval.genai.aggregation import classify_value
from tui_eval.tui import main_screen
from tui_eval.tui.app import TuiEvalApp
from tui_eval.workbench.events import GenerationStarted, ResultsReceived
from tui_eval.workbench.results import ResultTable, cell_from_feedback
from tui_fixtures import trace_id

pytestmark = pytest.mark.anyio


def batch(generation: int) -> ResultTable:
    table = ResultTable(generation, "hash")
    for index in range(12):
        feedback = Feedback("exact_match", index % 2 == 0)
        table.add(trace_id(index), [cell_from_feedback(feedback, classify_value(feedback))])
    return table


@pytest.fixture
def long_pause(monkeypatch):
    """Pauses long enough that a loaded test machine cannot blur them."""
    monkeypatch.setattr(main_screen, "INPUT_GRACE_SECONDS", 0.5)
    monkeypatch.setattr(main_screen, "MAX_PAUSE_SECONDS", 1.5)


async def test_results_wait_after_key(sample_store, long_pause):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_loaded(pilot)
        screen = app.screen
        await pilot.press("j")
        pressed = app.last_input_at
        assert pressed > 0
        screen._session_event(GenerationStarted(1, Path("scorers.py"), 12))
        screen._session_event(ResultsReceived(1, batch(1), 12, 12))
        await pilot.pause(0.2)
        if time.perf_counter() - pressed < 0.45:
            # The grace time has not run out, so the queued results still wait.
            assert screen.model.by_id[trace_id(0)].scores == {}
        assert await wait_for(pilot, lambda: "exact_match" in screen.model.by_id[trace_id(0)].scores, timeout=5)
        assert time.perf_counter() - pressed >= 0.5


async def test_held_key_lets_results_through(sample_store, long_pause):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_loaded(pilot)
        screen = app.screen
        await pilot.press("j")
        screen._session_event(GenerationStarted(1, Path("scorers.py"), 12))
        screen._session_event(ResultsReceived(1, batch(1), 12, 12))
        started = time.perf_counter()
        # A key every 20 ms, as a held key repeats: the results wait at most MAX_PAUSE_SECONDS.
        while "exact_match" not in screen.model.by_id[trace_id(0)].scores:
            assert time.perf_counter() - started < 4.0, "results waited 4 s for repeated keys"
            await pilot.press("k" if screen.query_one("#traces").cursor else "j")
            await pilot.pause(0.02)
        assert time.perf_counter() - started >= 1.0
