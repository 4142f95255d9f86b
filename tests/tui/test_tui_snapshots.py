"""Screen snapshots of the workbench at 80x24 (tabs) and 160x48 (every pane), on a fixed store.

Scores come from real workbench event objects fed to the screen, so the pictures do not
depend on process timing. Regenerate with ``pytest tests/tui --snapshot-update`` and look at
the SVG files before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_eval.entities import Feedback
from tui_eval.genai.aggregation import classify_value
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.status_bar import StatusBar
from tui_eval.workbench.events import GenerationFinished, GenerationStarted, ReloadFailed, ResultsReceived
from tui_eval.workbench.results import ResultTable, cell_from_feedback
from tui_fixtures import build_store, sample_traces, trace_id

SIZES = [(80, 24), (160, 48)]


def results(generation: int) -> ResultTable:
    table = ResultTable(generation, "hash")
    for index in range(12):
        passed = index % 3 != 0 if generation == 1 else index % 4 != 0
        feedbacks = [
            Feedback("exact_match", passed),
            Feedback("relevance", round(0.1 * index, 2) if index != 5 else float("nan"), rationale=f"rationale {index}"),
            Feedback("tone", "yes" if index % 2 else "no"),
        ]
        if index == 7:
            feedbacks[2] = Feedback("tone", None, error=ValueError("tone model unavailable"))
        table.add(trace_id(index), [cell_from_feedback(item, classify_value(item)) for item in feedbacks])
    return table


def feed(screen, *events) -> None:
    for event in events:
        screen._session_event(event)


def scored(screen) -> None:
    feed(
        screen,
        GenerationStarted(1, Path("scorers.py"), 12),
        ResultsReceived(1, results(1), 12, 12),
        GenerationFinished(1, {}, {}, None, 0.1, True),
        GenerationStarted(2, Path("scorers.py"), 12),
        ResultsReceived(2, results(2), 12, 12),
        GenerationFinished(2, {}, {}, None, 0.1, True),
    )


@pytest.fixture
def snapshot_store(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    build_store(tmp_path / "traces.db", sample_traces())
    return "traces.db"


def settle(screen):
    """Wait for the generations to be painted, then fix the measured time shown in the status bar."""

    async def run(pilot):
        await pilot.pause(0.3)
        scored(screen())
        for _ in range(100):
            if screen().painted_generation >= 2:
                break
            await pilot.pause(0.05)
        status = screen().query_one(StatusBar)
        status.status.last_reload_ms = 150.0
        status.show()
        pilot.app.clear_notifications()
        await pilot.pause(0.3)

    return run


def make_app(store: str) -> TuiEvalApp:
    return TuiEvalApp(store, log_clock=False, route_logging=False)


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, snapshot_store, size):
    app = make_app(snapshot_store)
    assert snap_compare(app, terminal_size=size, run_before=settle(lambda: app.screen), press=["j", "j"])


@pytest.mark.parametrize("size", SIZES)
def test_detail(snap_compare, snapshot_store, size):
    app = make_app(snapshot_store)
    before = settle(lambda: app.screen)

    async def run(pilot):
        await before(pilot)
        await pilot.press("j", "j", "j", "enter")
        for _ in range(100):
            detail = app.screen.query_one("#detail")
            if detail.trace is not None and detail.trace.info.trace_id == trace_id(8):
                break
            await pilot.pause(0.05)
        await pilot.press("j")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, snapshot_store, size):
    app = make_app(snapshot_store)
    assert snap_compare(app, terminal_size=size, run_before=settle(lambda: app.screen), press=["f1"])


@pytest.mark.parametrize("size", SIZES)
def test_error_pane(snap_compare, snapshot_store, size):
    app = make_app(snapshot_store)
    before = settle(lambda: app.screen)

    async def run(pilot):
        await before(pilot)
        feed(
            app.screen,
            GenerationStarted(3, Path("scorers.py"), 12),
            ReloadFailed(
                3,
                Path("scorers.py"),
                14,
                "SyntaxError: invalid syntax ([bold]not markup[/bold])",
                'Traceback (most recent call last):\n  File "scorers.py", line 14\n    return outputs ==\n                     ^\nSyntaxError: invalid syntax',
            ),
        )
        for _ in range(100):
            if app.screen.has_error:
                break
            await pilot.pause(0.05)
        app.clear_notifications()
        if app.screen.tabbed:
            await pilot.press("5")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run)
