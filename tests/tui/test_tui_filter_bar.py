"""The filter bar keeps a row for the typed text while it has focus."""

from __future__ import annotations

import pytest

from helpers import wait_loaded
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.main_screen import FilterBar

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_focused_filter_bar_shows_the_typed_text(sample_store, size):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=size) as pilot:
        assert await wait_loaded(pilot)
        screen = app.screen
        await pilot.press("slash", *"refund")
        await pilot.pause()
        bar = screen.query_one(FilterBar)
        assert app.focused is bar
        assert bar.value == "refund"
        assert bar.content_region.height == 1
        line = "".join(segment.text for segment in bar.render_line(0))
        assert "refund" in line
