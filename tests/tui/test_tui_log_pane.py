"""The log pane keeps new lines in view when the error pane opens above it, unless the user scrolled up."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import wait_for, wait_loaded
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.log_pane import LogPane
from tui_eval.workbench.events import GenerationStarted, ReloadFailed

pytestmark = pytest.mark.anyio

WIDE = (120, 40)


def fill(pane: LogPane, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        pane.add_line("stdout", f"line {number}")


async def test_log_follows_after_error_pane_opens(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        assert await wait_loaded(pilot)
        screen = app.screen
        pane = screen.query_one(LogPane)
        fill(pane, 60)
        await pilot.pause(0.1)
        assert pane.is_vertical_scroll_end
        screen._session_event(GenerationStarted(1, Path("scorers.py"), 12))
        screen._session_event(ReloadFailed(1, Path("scorers.py"), 3, "SyntaxError: invalid syntax", "Traceback\n  line 3"))
        assert await wait_for(pilot, lambda: screen.query_one("#errors").display, timeout=5)
        await pilot.pause(0.2)
        fill(pane, 5, start=60)
        await pilot.pause(0.1)
        assert pane.following
        assert pane.is_vertical_scroll_end
        assert pane.scroll_y == pane.max_scroll_y


async def test_log_stays_where_user_scrolled(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        assert await wait_loaded(pilot)
        pane = app.screen.query_one(LogPane)
        fill(pane, 60)
        await pilot.pause(0.1)
        pane.scroll_to(y=5, animate=False, immediate=True)
        await pilot.pause(0.1)
        assert not pane.following
        fill(pane, 5, start=60)
        await pilot.pause(0.1)
        assert round(pane.scroll_y) == 5
        # Back at the end, new lines are followed again.
        pane.scroll_end(animate=False, immediate=True)
        await pilot.pause(0.1)
        fill(pane, 5, start=65)
        await pilot.pause(0.1)
        assert pane.is_vertical_scroll_end
