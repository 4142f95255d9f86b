"""Pilot tests of the save -> results flow with a real workbench session, store and scorer file."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from helpers import rich_text, screen_text, wait_for, wait_generation, wait_loaded, wait_text
from tui_eval.tui.app import TuiEvalApp
from tui_eval.tui.main_screen import MainScreen
from tui_eval.tui.trace_list import TraceList
from tui_eval.workbench.remote import RemoteSession
from tui_fixtures import MARKUP_TEXTS, trace_id

pytestmark = pytest.mark.anyio

WIDE = (200, 60)


def save(path, source: str) -> None:
    """Write a new version of a scorer module the way an editor saves: whole file, new content."""
    path.write_text(textwrap.dedent(source))


async def test_save_rescores_and_marks_changes(sample_store, scorer_file):
    app = TuiEvalApp(sample_store, scorers_path=scorer_file, log_clock=False)
    async with app.run_test(size=WIDE) as pilot:
        assert await wait_loaded(pilot)
        screen: MainScreen = app.screen
        assert await wait_generation(pilot, 1)
        # The session runs in a process of its own, so its work never holds this process's GIL.
        assert isinstance(screen.session, RemoteSession)
        assert screen.session.pid not in (None, os.getpid())
        model = screen.model
        assert model.columns == ["exact_match", "length"]
        assert model.by_id[trace_id(1)].scores["exact_match"][1] is False
        assert model.by_id[trace_id(0)].scores["exact_match"][1] is True
        assert "my_scorers.py" in screen_text(app)

        save(
            scorer_file,
            """
            from tui_eval.genai.scorers import scorer


            @scorer
            def exact_match(outputs):
                return "order" in str(outputs)


            @scorer
            def length(outputs):
                return len(str(outputs)) / 100
            """,
        )
        assert await wait_generation(pilot, 2)
        changed = {row.trace_id for row in model.rows if row.changed}
        # Only "Where is my order?" keeps True; ten flip from True to False and the refund one stays False.
        assert len(changed) == 10
        assert trace_id(1) not in changed and trace_id(0) not in changed
        assert all(model.by_id[tid].changed == {"exact_match"} for tid in changed)
        assert screen.reload_latency_ms is not None
        assert "save\u2192scores" in screen_text(app)

        await pilot.press("c")
        assert {row.trace_id for row in model.view} == changed
        await pilot.press("c", "f")
        assert len(model.view) == 11
        await pilot.press("f")
        await pilot.press("slash", *"exact_match=true", "enter")
        assert [row.trace_id for row in model.view] == [trace_id(0)]
        text = await wait_text(pilot, "changed 10")
        assert "changed 10" in text
        assert "rows changed in the last generation: 10 of 12" in text


async def test_reload_failure_shows_file_and_line_then_recovers(sample_store, scorer_file):
    app = TuiEvalApp(sample_store, scorers_path=scorer_file, log_clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_loaded(pilot)
        screen: MainScreen = app.screen
        assert await wait_generation(pilot, 1)
        save(
            scorer_file,
            """
            from tui_eval.genai.scorers import scorer

            @scorer
            def exact_match(outputs):
                return outputs ==
            """,
        )
        assert await wait_for(pilot, lambda: screen.last_reload_error is not None, 60)
        assert screen.stale and screen.has_error
        await pilot.press("5")
        text = await wait_text(pilot, "Reload failed")
        assert "Log+Error!" in text
        # Long temporary paths wrap in the pane, so the location is read at full width.
        report = rich_text(screen.query_one("#error-body").content)
        assert "my_scorers.py:6" in report
        assert "SyntaxError" in report
        await pilot.press("1")
        text = await wait_text(pilot, "~exact_m")
        assert "~exact_m" in text
        # The status bar is repainted on its own timer, so it may show STALE a frame later.
        text = await wait_text(pilot, "STALE")
        assert "STALE" in text
        assert "~exact_m" in text
        # The last good scores stay.
        assert screen.model.by_id[trace_id(1)].scores["exact_match"][1] is False

        save(
            scorer_file,
            """
            from tui_eval.genai.scorers import scorer

            @scorer
            def exact_match(outputs):
                return True
            """,
        )
        assert await wait_generation(pilot, 3)
        assert not screen.stale and not screen.has_error
        assert screen.model.columns == ["exact_match"]
        assert "STALE" not in screen_text(app)


async def test_rescore_key_starts_a_generation(sample_store, scorer_file):
    app = TuiEvalApp(sample_store, scorers_path=scorer_file, log_clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_loaded(pilot)
        assert await wait_generation(pilot, 1)
        assert "start\u2192scores" in await wait_text(pilot, "start\u2192scores")
        await pilot.press("r")
        assert await wait_generation(pilot, 2)
        # Same scorer, same values: a rescore changes nothing.
        assert app.screen.model.changed_rows() == 0
        # The status bar times the rescore, not a save.
        assert "rescore\u2192scores" in await wait_text(pilot, "rescore\u2192scores")
        await pilot.press("5")
        assert "rescore" in await wait_text(pilot, "rescore")


async def test_edit_key_runs_editor_and_the_save_rescores(sample_store, scorer_file, tmp_path, monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text(
        textwrap.dedent(
            """
            import sys
            with open(sys.argv[1], "a") as handle:
                handle.write("\\n\\n@scorer\\ndef polite(outputs):\\n    return 'yes'\\n")
            """
        )
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    app = TuiEvalApp(sample_store, scorers_path=scorer_file, log_clock=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_loaded(pilot)
        assert await wait_generation(pilot, 1)
        await pilot.press("e")
        assert "def polite" in scorer_file.read_text()
        assert await wait_generation(pilot, 2)
        assert app.screen.model.columns == ["exact_match", "length", "polite"]
        assert "\u2713 yes" in await wait_text(pilot, "\u2713 yes")


MARKUP_SCORERS = '''
from tui_eval.entities import Feedback
from tui_eval.genai.scorers import scorer

MARKUP = {markup!r}


@scorer
def judge(inputs):
    question = inputs["question"]
    if question in MARKUP:
        print("printed", question)
        return Feedback(name="see [bold]x[/bold]", value=True, rationale="because " + question)
    return Feedback(name="see [bold]x[/bold]", value=False, rationale="plain")


@scorer
def fragile(inputs):
    if inputs["question"] in MARKUP:
        raise ValueError("failed on " + inputs["question"])
    return 1
'''


async def test_markup_texts_shown_verbatim_in_every_pane(sample_store, tmp_path):
    scorer_path = tmp_path / "markup_scorers.py"
    scorer_path.write_text(MARKUP_SCORERS.format(markup=list(MARKUP_TEXTS)))
    app = TuiEvalApp(sample_store, scorers_path=scorer_path, log_clock=False)
    async with app.run_test(size=(200, 70)) as pilot:
        assert await wait_loaded(pilot)
        screen: MainScreen = app.screen
        assert await wait_generation(pilot, 1)
        trace_list = screen.query_one(TraceList)
        list_text = screen_text(app)
        summary_seen = "see [bold]x[/bold]" in list_text
        assert summary_seen
        for index, text in enumerate(MARKUP_TEXTS, start=2):
            assert trace_list.move_to_trace(trace_id(index))
            await pilot.press("enter")
            assert await wait_for(pilot, lambda: screen.query_one("#detail").trace is not None and screen.query_one("#detail").trace.info.trace_id == trace_id(index))
            shown = await wait_text(pilot, f"Answer to: {text}")
            # The list row, the span's inputs and outputs in the detail.
            assert shown.count(text) >= 3, text
            # The scores pane wraps long lines, so its content is read at full width.
            scores = rich_text(screen.query_one("#scores-body").content)
            assert f"because {text}" in scores
            assert f"failed on {text}" in scores
            await pilot.press("escape")
        log_text = "\n".join(screen.query_one("#log-lines").lines)
        for text in MARKUP_TEXTS:
            assert f"printed {text}" in log_text

        scorer_path.write_text("raise ValueError('validation error [input_value={\\'k[0]\\': 1}] and [dim]step[/]')\n")
        assert await wait_for(pilot, lambda: screen.last_reload_error is not None, 60)
        shown = await wait_text(pilot, "validation error [input_value={'k[0]': 1}] and [dim]step[/]")
        assert "validation error [input_value={'k[0]': 1}] and [dim]step[/]" in shown
        expected_note = "validation error [input_value={'k[0]': 1}] and [dim]step[/]"
        assert await wait_for(
            pilot, lambda: any(expected_note in str(note.message) for note in app._notifications), 30
        )
