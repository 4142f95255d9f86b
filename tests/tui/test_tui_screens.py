"""Pilot tests of what the app shows: store problems, NO_COLOR, escapes, wide text, big stores."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from rich.cells import cell_len, split_graphemes

from helpers import screen_segments, screen_text, wait_for, wait_loaded
from tui_eval.cli import build_parser
from tui_eval.store import Store
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.main_screen import MainScreen
from tui_eval.tui.problem_screen import ProblemScreen, StoreProblem
from tui_eval.tui.trace_list import TraceList
from tui_fixtures import WIDE_TEXTS, build_store, bulk_store, sample_traces, trace_id

pytestmark = pytest.mark.anyio


async def problem_of(app, pilot) -> StoreProblem:
    assert await wait_for(pilot, lambda: isinstance(app.screen, ProblemScreen))
    return app.screen.problem


async def test_missing_store_folder_named(tmp_path):
    path = tmp_path / "no" / "such" / "traces.db"
    app = TuiEvalApp(path)
    async with app.run_test(size=(100, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.MISSING
        assert problem.detail == f"The folder {tmp_path / 'no' / 'such'} does not exist either."
        assert "does not exist either" in screen_text(app)
        assert not (tmp_path / "no").exists()


async def test_missing_store_screen(tmp_path):
    path = tmp_path / "nothing.db"
    app = TuiEvalApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.MISSING
        text = screen_text(app)
        assert "No trace store here yet" in text
        assert "tui-eval demo" in text
        assert problem.detail == ""
        assert not path.exists()
        # Traces arrive; r checks again and opens the workbench.
        build_store(path, sample_traces()[:2])
        await pilot.press("r")
        assert await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert await wait_loaded(pilot)
        assert len(app.screen.model.rows) == 2
        await pilot.press("q")


async def test_empty_store(tmp_path):
    path = tmp_path / "empty.db"
    Store(path).close()
    app = TuiEvalApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.EMPTY
        assert "The store has no traces yet" in screen_text(app)
        await pilot.press("q")
        assert app.return_code == 0


async def test_corrupt_store(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database \x00\x01" * 100)
    app = TuiEvalApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.UNREADABLE
        text = screen_text(app)
        assert "cannot be read as a trace store" in text
        assert "Traceback" not in text


async def test_store_of_a_newer_version(tmp_path):
    path = build_store(tmp_path / "new.db", sample_traces()[:1])
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 999")
    app = TuiEvalApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.NEWER
        assert "Upgrade tui-eval" in screen_text(app)


async def test_invalid_filter_option(sample_store):
    app = TuiEvalApp(sample_store, filter_string="attributes.nonsense ~~ 3")
    async with app.run_test(size=(80, 24)) as pilot:
        problem = await problem_of(app, pilot)
        assert problem.kind == StoreProblem.BAD_FILTER
        assert "--filter" in screen_text(app)


async def test_filter_option_selects_traces(sample_store):
    app = TuiEvalApp(sample_store, filter_string="attributes.status = 'ERROR'")
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_loaded(pilot)
        assert [row.trace_id for row in app.screen.model.view] == [trace_id(1)]


async def test_no_color_keeps_marks(sample_store, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = TuiEvalApp(sample_store)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_loaded(pilot)
        assert app.no_color
        await pilot.pause()
        update = app.screen._compositor.render_update(full=True)
        from rich.console import Console
        import io

        console = Console(width=80, file=io.StringIO(), color_system="truecolor")
        colours = {
            (segment.style.color, segment.style.bgcolor)
            for segment in console.render(update)
            if segment.style is not None and (segment.style.color or segment.style.bgcolor)
        }
        # Textual turns every colour into a grey (or the terminal default) under NO_COLOR.
        for pair in colours:
            for colour in pair:
                if colour is not None and not colour.is_default:
                    red, green, blue = colour.get_truecolor()
                    assert red == green == blue, colour
        text = screen_text(app)
        assert "ERR" in text


async def test_control_characters_never_reach_the_terminal(sample_store):
    app = TuiEvalApp(sample_store)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_loaded(pilot)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.screen.query_one("#detail").trace is not None)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Escape \u241b[31mred\u241b[0m and bell \u2407 here" in text
        for segment in screen_segments(app):
            assert not any(ord(char) < 32 and char != "\n" or 0x7F <= ord(char) < 0xA0 for char in segment), repr(segment)


@pytest.mark.parametrize("width", [60, 80, 97])
async def test_wide_text_keeps_columns_aligned(sample_store, width):
    app = TuiEvalApp(sample_store)
    async with app.run_test(size=(width, 24)) as pilot:
        assert await wait_loaded(pilot)
        trace_list = app.screen.query_one(TraceList)
        await pilot.pause()
        strips = [trace_list.render_line(y) for y in range(1, 13)]
        for strip in strips:
            assert strip.cell_length == trace_list.size.width
        request = next(column for column in trace_list.columns if column.id == "request")
        start = sum(column.width + 1 for column in trace_list.columns[: trace_list.columns.index(request)])
        by_text = {row.request: index for index, row in enumerate(app.screen.model.view)}
        for original in WIDE_TEXTS:
            strip = strips[by_text[original]]
            before = strip.crop(0, start).text
            cell = strip.crop(start, start + request.width).text
            after = strip.crop(start + request.width, strip.cell_length).text
            assert cell_len(before) == start
            assert cell_len(cell) == request.width
            # The duration column starts right after the request column on every row.
            assert after.startswith(" ")
            assert after.strip().split(" ")[0][-1] in "sm"
            kept = cell.rstrip(" \u2026")
            boundaries = {end for _s, end, _c in split_graphemes(original)[0]} | {0}
            assert len(kept) in boundaries, (original, cell)


async def test_many_long_traces_scroll_fast(tmp_path):
    store = bulk_store(tmp_path / "long.db", 5000, output_lines=100)
    app = TuiEvalApp(store)
    async with app.run_test(size=(160, 48)) as pilot:
        assert await wait_loaded(pilot, timeout=60)
        screen = app.screen
        assert len(screen.model.rows) == 5000
        assert all("\n" not in row.response and len(row.response) <= 240 for row in screen.model.rows)
        trace_list = screen.query_one(TraceList)
        started = time.perf_counter()
        for _ in range(20):
            await pilot.press("pagedown")
        await pilot.press("G")
        for _ in range(10):
            await pilot.press("tab")
        elapsed = time.perf_counter() - started
        assert trace_list.cursor == 4999
        # 31 keys, each repainting the screen; generous for a slow CI machine.
        assert elapsed < 20, elapsed


ADVICE_COMMAND = re.compile(r"tui-eval((?: (?:[a-z][a-z-]*|[A-Z][A-Z_]*|--[a-z-]+))+)")


@pytest.mark.parametrize("kind", [StoreProblem.MISSING, StoreProblem.EMPTY, StoreProblem.UNREADABLE, StoreProblem.NEWER, StoreProblem.BAD_FILTER])
def test_problem_advice_names_real_commands(kind):
    advice = " ".join(StoreProblem(kind, "traces.db").advice)
    commands = [match.split() for match in ADVICE_COMMAND.findall(advice)]
    if kind in (StoreProblem.MISSING, StoreProblem.EMPTY):
        assert len(commands) >= 3
    for words in commands:
        # Placeholders in capitals stand for a value of the user's.
        argv = ["value" if word.isupper() else word for word in words]
        try:
            build_parser(argv[0]).parse_args(argv)
        except SystemExit as exit_:
            pytest.fail(f"the advice names `tui-eval {' '.join(words)}`, which tui-eval rejects (exit {exit_.code})")
