"""Pilot tests of every key of the workbench on a real store (no scorer module)."""

from __future__ import annotations

import csv
import json

import pytest

from helpers import rich_text, screen_text, wait_for, wait_loaded
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.bindings import KEYS
from tui_eval.tui.export_screen import ExportScreen
from tui_eval.tui.help_screen import HelpScreen
from tui_eval.tui.main_screen import FilterBar, MainScreen
from tui_eval.tui.span_tree import SpanTree
from tui_eval.tui.trace_list import TraceList
from tui_fixtures import bulk_store, trace_id

pytestmark = pytest.mark.anyio

WIDE = (160, 48)
NARROW = (80, 24)


async def started(pilot) -> MainScreen:
    assert await wait_loaded(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, MainScreen)
    return screen


MOVES = [
    (["j"], 1),
    (["down", "down"], 2),
    (["j", "j", "k"], 1),
    (["down", "up"], 0),
    (["G"], 11),
    (["end"], 11),
    (["G", "g"], 0),
    (["G", "home"], 0),
    (["pagedown"], None),
    (["ctrl+d"], None),
    (["pagedown", "pageup"], 0),
    (["ctrl+d", "ctrl+u"], 0),
]


async def test_list_movement_keys(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        trace_list = screen.query_one(TraceList)
        for keys, cursor in MOVES:
            await pilot.press("home", *keys)
            expected = min(trace_list.page_height, 11) if cursor is None else cursor
            assert trace_list.cursor == expected, keys
            assert trace_list.current_row is screen.model.view[expected]


async def test_page_keys_scroll_a_long_list(tmp_path):
    store = bulk_store(tmp_path / "many.db", 300)
    app = TuiEvalApp(store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        trace_list = screen.query_one(TraceList)
        await pilot.press("pagedown", "pagedown")
        assert trace_list.cursor == 2 * trace_list.page_height
        assert trace_list.scroll_y > 0
        await pilot.press("G")
        assert trace_list.cursor == 299
        assert trace_list.current_row.trace_id == trace_id(0)


async def test_open_and_back(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        detail = screen.query_one("#detail")
        for open_key, back_key, row in (("enter", "escape", 1), ("l", "h", 2), ("enter", "h", 3), ("l", "escape", 4)):
            await pilot.press("home", *["j"] * row, open_key)
            assert screen.active_pane == "detail"
            expected = trace_id(11 - row)
            assert await wait_for(pilot, lambda: detail.trace is not None and detail.trace.info.trace_id == expected)
            assert isinstance(app.focused, SpanTree)
            await pilot.press("j")
            assert screen.query_one(SpanTree).cursor == 1
            assert "chat.completions" in screen_text(app)
            await pilot.press(back_key)
            assert screen.active_pane == "traces"
            assert isinstance(app.focused, TraceList)


PANE_KEYS = [
    (["tab"], "detail"),
    (["ctrl+w", "ctrl+w"], "scores"),
    (["shift+tab"], "log"),
    (["W", "W"], "summary"),
    (["tab"] * 5, "traces"),
    (["2"], "detail"),
    (["3"], "scores"),
    (["4"], "summary"),
    (["5"], "log"),
    (["5", "1"], "traces"),
]


@pytest.mark.parametrize("size", [NARROW, WIDE])
async def test_pane_keys(sample_store, size):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=size) as pilot:
        screen = await started(pilot)
        assert screen.tabbed is (size == NARROW)
        for keys, pane in PANE_KEYS:
            await pilot.press("1", *keys)
            assert screen.active_pane == pane, keys
            target = screen.query_one(f"#{pane}")
            assert app.focused is target or target in app.focused.ancestors_with_self
            shown = [name for name in ("traces", "detail", "scores", "summary", "log") if screen.query_one(f"#{name}").region.height]
            assert shown == ([pane] if screen.tabbed else ["traces", "detail", "scores", "summary", "log"])


async def test_filter_key_alias_opens_the_bar(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        await pilot.press("ctrl+f")
        assert app.focused is screen.query_one(FilterBar)
        await pilot.press(*"refund", "enter")
        assert [row.trace_id for row in screen.model.view] == [trace_id(1)]


async def test_filter_narrows_and_next_previous_stay_inside(sample_store):
    filter_key = "slash"
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        await pilot.press(filter_key)
        bar = screen.query_one(FilterBar)
        assert bar.has_class("-open")
        assert app.focused is bar
        await pilot.press(*"bold")
        await pilot.press("enter")
        assert not bar.has_class("-open")
        # Only the markup trace mentions "bold" (in its request and its response).
        assert [row.request for row in screen.model.view] == ["see [bold]x[/bold]"]
        await pilot.press("slash")
        await pilot.press("ctrl+u")  # Input: delete to the start of the line
        await pilot.press(*"answer")
        await pilot.press("enter")
        matching = [row.trace_id for row in screen.model.view]
        assert len(matching) == 12
        await pilot.press("slash", "ctrl+u", *'"[dim]"', "enter")
        assert len(screen.model.view) == 1
        await pilot.press("slash", "ctrl+u", *"error", "enter")
        assert screen.model.query.text == "error"
        await pilot.press("slash", "ctrl+u", *"duration>900", "enter")
        view = [row.trace_id for row in screen.model.view]
        assert view == [trace_id(11), trace_id(10), trace_id(9), trace_id(8), trace_id(7)]
        trace_list = screen.query_one(TraceList)
        await pilot.press("g")
        assert trace_list.cursor == 0
        for key, expected in (("n", 1), ("f3", 2), ("N", 1), ("shift+f3", 0), ("N", 4), ("n", 0)):
            await pilot.press(key)
            assert trace_list.cursor == expected, (key, app.focused)
            assert trace_list.current_row.trace_id in view
        await pilot.press("escape")
        assert screen.model.query is None
        assert len(screen.model.view) == 12


async def test_invalid_filter_keeps_the_bar_open(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        await pilot.press("slash", *"score<abc", "enter")
        assert screen.query_one(FilterBar).has_class("-open")
        assert any("score<abc" in str(note.message) for note in app._notifications)
        await pilot.press("escape")
        assert not screen.query_one(FilterBar).has_class("-open")
        assert screen.model.query is None
        assert len(screen.model.view) == 12


async def test_sort_keys(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        assert screen.model.sort_column == "time"
        await pilot.press("s")
        assert screen.model.sort_column == "name"
        await pilot.press("s", "s")
        assert screen.model.sort_column == "duration"
        assert screen.model.view[0].trace_id == trace_id(11)
        await pilot.press("S")
        assert screen.model.sort_reverse is False
        assert screen.model.view[0].trace_id == trace_id(0)
        assert "duratio\u25b2" in screen_text(app)


async def test_toggles_without_scores_empty_the_view(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        for key in ("c", "f"):
            await pilot.press(key)
            assert screen.model.view == []
            assert "0/12 traces" in screen_text(app)
            await pilot.press(key)
            assert len(screen.model.view) == 12


async def test_help_lists_every_binding(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    key = "f1"
    async with app.run_test(size=(120, 80)) as pilot:
        await started(pilot)
        await pilot.press(key)
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        text = screen_text(app)
        for item in KEYS:
            assert item.id in text, item.id
        # The filter help shows literals as they are typed, without reStructuredText quotes.
        assert "(refund," in text
        assert "``" not in text
        await pilot.press("j", "k", "q")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_runs_workbench_commands(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        screen = await started(pilot)
        for key, command, column in (("ctrl+p", "Sort by tokens", "tokens"), ("colon", "Sort by request", "request")):
            await pilot.press(key)
            assert await wait_for(pilot, lambda: app.screen.id == "--command-palette")
            await pilot.press(*command)
            await pilot.pause(0.5)
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: screen.model.sort_column == column)
            assert app.screen is screen


@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_quit_keys(sample_store, key):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        await started(pilot)
        await pilot.press(key)
        await pilot.pause()
        assert app.return_code == 0
        assert not app.is_running


@pytest.mark.parametrize(("key", "suffix"), [("x", "csv"), ("w", "jsonl")])
async def test_export_keys_write_the_view(sample_store, tmp_path, key, suffix):
    app = TuiEvalApp(sample_store, log_clock=False)
    target = tmp_path / f"out.{suffix}"
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        await pilot.press("slash", *"refund", "enter")
        await pilot.press(key)
        assert isinstance(app.screen, ExportScreen)
        field = app.screen.query_one("#export-path")
        field.value = str(target)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: target.exists() and target.stat().st_size > 0)
        assert isinstance(app.screen, MainScreen)
    if suffix == "csv":
        with target.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["request"] for row in rows] == ["How do I get a refund?"]
    assert rows[0]["trace_id"] == trace_id(1)


async def test_export_escape_cancels(sample_store, tmp_path):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        await started(pilot)
        await pilot.press("x", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_show_all_key_uncuts_payloads(tmp_path):
    store = bulk_store(tmp_path / "long.db", 2, output_lines=400)
    app = TuiEvalApp(store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        screen = await started(pilot)
        await pilot.press("enter")
        view = screen.query_one("#span-view")
        assert await wait_for(pilot, lambda: view.span is not None)
        assert view.cut_chars > 0
        assert not view.show_all
        await pilot.press("a")
        assert view.show_all and view.cut_chars == 0
        await pilot.press("a")
        assert not view.show_all


async def test_rescore_and_edit_need_a_scorer_module(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        await started(pilot)
        await pilot.press("r", "e")
        messages = [str(note.message) for note in app._notifications]
        assert any("--scorers FILE to score" in message for message in messages)
        assert any("--scorers FILE to edit" in message for message in messages)


async def test_filter_change_moves_panes_with_cursor(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        screen = await started(pilot)
        trace_list = screen.query_one(TraceList)
        scores = screen.query_one("#scores-body")
        heading = screen.query_one("#detail-heading")
        assert await wait_for(pilot, lambda: trace_id(11)[:12] in rich_text(scores.content))
        # The cursor stays at index 0 while the row under it changes to the markup trace.
        await pilot.press("slash", *"bold", "enter")
        assert trace_list.cursor == 0
        first = screen.model.view[0].trace_id
        assert first != trace_id(11)
        assert await wait_for(pilot, lambda: first[:12] in rich_text(scores.content), timeout=5)
        assert await wait_for(pilot, lambda: first[:12] in rich_text(heading.content), timeout=5)
        # A filter that matches nothing empties both panes instead of leaving the old trace.
        await pilot.press("slash", "ctrl+u", *"nothing-matches-this", "enter")
        assert screen.model.view == []
        assert await wait_for(pilot, lambda: "No trace selected." in rich_text(scores.content), timeout=5)
        assert await wait_for(pilot, lambda: "No trace open." in rich_text(heading.content), timeout=5)


async def test_invalid_filter_keeps_previous_rows(sample_store):
    app = TuiEvalApp(sample_store, log_clock=False)
    async with app.run_test(size=NARROW) as pilot:
        screen = await started(pilot)
        await pilot.press("slash", *"bold", "enter")
        assert [row.request for row in screen.model.view] == ["see [bold]x[/bold]"]
        await pilot.press("slash", "ctrl+u", *"nosuch")
        # Typed so far, "nosuch" is valid free text that matches nothing.
        assert screen.model.view == []
        await pilot.press(*"=1", "enter")
        # The whole text names no score or field: the rows of the filter from before come back.
        assert screen.query_one(FilterBar).has_class("-open")
        assert screen.model.query.text == "bold"
        assert [row.request for row in screen.model.view] == ["see [bold]x[/bold]"]
        assert "/bold" in screen_text(app)
