"""Unit tests of the pure render functions: no app, only values in and Text out."""

from __future__ import annotations

import math

import pytest
from rich.cells import cell_len, split_graphemes
from rich.console import Console
from rich.text import Text

from tui_eval.entities import Feedback, Span, SpanStatus, SpanStatusCode
from tui_eval.genai.aggregation import classify_value
from tui_eval.tui import render
from tui_eval.tui.model import ScorerStats
from tui_eval.tui.trace_list import HIDDEN_COLUMN, layout_columns
from tui_eval.workbench.results import cell_from_feedback
from tui_fixtures import MARKUP_TEXTS, WIDE_TEXTS


def cell(value=None, error=None, rationale=None, name="metric"):
    feedback = Feedback(name, value, error=error, rationale=rationale, _allow_empty=True)
    return cell_from_feedback(feedback, classify_value(feedback))


def plain(renderable, width=100) -> str:
    console = Console(width=width, record=True, color_system=None, file=__import__("io").StringIO())
    console.print(renderable)
    return console.export_text()


# --- control characters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred", "\u241b[31mred"),
        ("bell\x07", "bell\u2407"),
        ("nul\x00", "nul\u2400"),
        ("del\x7f", "del\u2421"),
        ("csi\x9b", "csi\\x9b"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("tab\there", "tab\u2409here"),
    ],
)
def test_visible_replaces_controls(raw, shown):
    assert render.visible(raw) == shown


def test_visible_multiline_keeps_newlines():
    assert render.visible("a\r\nb\rc\td\x1b", multiline=True) == "a\nb\u240dc    d\u241b"


def test_visible_leaves_clean_text_alone():
    text = "plain [bold]x[/bold] \u6f22\u5b57 \U0001F468\u200d\U0001F469"
    assert render.visible(text) is text


def test_one_line_collapses_and_cuts():
    line = render.one_line("first\nsecond\tthird", limit=240)
    assert "\n" not in line
    assert "\t" not in line
    assert line == "first \u21b5 second third"
    long = render.one_line("x" * 1000, limit=50)
    assert len(long) == 50
    assert long.endswith("\u2026")


def test_one_line_of_nothing_is_empty():
    assert render.one_line(None) == ""
    assert render.one_line("") == ""


# --- widths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", WIDE_TEXTS)
@pytest.mark.parametrize("width", range(1, 18))
def test_fit_keeps_cell_width_and_graphemes(text, width):
    fitted = render.fit(Text(text), width)
    assert cell_len(fitted.plain) == width
    kept = fitted.plain.rstrip(" \u2026")
    boundaries = {end for _start, end, _cells in split_graphemes(text)[0]} | {0}
    assert len(kept) in boundaries, f"{kept!r} splits a grapheme of {text!r}"


def test_fit_right_justifies():
    assert render.fit("42", 5, justify="right").plain == "   42"


def test_fit_never_reads_markup():
    for text in MARKUP_TEXTS:
        assert render.fit(text, 80).plain.rstrip() == text


# --- small formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "shown"),
    [(None, "\u2013"), (0, "0ms"), (0.25, "0.25ms"), (850, "850ms"), (1250, "1.25s"), (12_500, "12.5s"), (123_000, "2m03s"), (3_720_000, "1h02m")],
)
def test_format_duration(ms, shown):
    assert render.format_duration_ms(ms) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1, "1"), (0.5, "0.5"), (1 / 3, "0.333"), (2.0, "2"), (1e-5, "1.00e-05"), (float("inf"), "inf"), (float("nan"), "NaN")],
)
def test_format_number(value, shown):
    assert render.format_number(value) == shown


def test_format_count():
    assert [render.format_count(n) for n in (None, 950, 12_345, 4_100_000)] == ["\u2013", "950", "12.3k", "4.1M"]


# --- score cells -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "kind", "text"),
    [
        (True, None, render.CellKind.PASS, "\u2713"),
        (False, None, render.CellKind.FAIL, "\u2717"),
        ("yes", None, render.CellKind.PASS, "\u2713 yes"),
        ("No", None, render.CellKind.FAIL, "\u2717 No"),
        (0.75, None, render.CellKind.NUMBER, "0.75"),
        (3, None, render.CellKind.NUMBER, "3"),
        (float("nan"), None, render.CellKind.NAN, "NaN"),
        (None, None, render.CellKind.NONE, "\u2205"),
        (None, "boom", render.CellKind.ERROR, "err"),
        ("see [bold]x[/bold]", None, render.CellKind.TEXT, "see [bold]x[/bold]"),
        ({"a": 1}, None, render.CellKind.TEXT, '{"a": 1}'),
    ],
)
def test_classify_cells(value, error, kind, text):
    assert render.classify(cell(value, error)) == (kind, text)
    # The kind alone, used to count many cells, agrees with the full classification.
    assert render.cell_kind(cell(value, error)) is kind


def test_classify_missing_cell():
    assert render.classify(None) == (render.CellKind.MISSING, "\u00b7")


def test_marks_are_distinct_without_colour():
    marks = [render.classify(cell(v, e))[1] for v, e in ((True, None), (False, None), (None, "x"), (None, None), (math.nan, None))]
    marks.append(render.classify(None)[1])
    assert len(set(marks)) == len(marks)


def test_score_cell_has_exact_width():
    for value in (True, 0.123456, "a long textual verdict", None):
        for width in (5, 8, 12):
            assert render.score_cell(cell(value), width).cell_len == width


def test_score_cell_marks_changes_without_colour():
    changed = render.score_cell(cell(True), 5, changed=True)
    assert changed.style.underline
    assert not render.score_cell(cell(True), 5).style.underline


def test_same_outcome_compares_values_errors_and_nan():
    assert render.same_outcome(cell(math.nan), cell(math.nan))
    assert render.same_outcome(cell(True), cell(True))
    assert not render.same_outcome(cell(True), cell(1))
    assert not render.same_outcome(cell(0.5), cell(0.6))
    assert not render.same_outcome(cell(None, "a"), cell(None, "b"))
    assert not render.same_outcome(cell(True), None)
    assert render.same_outcome(None, None)


def test_cell_sort_key_order():
    cells = [None, cell(None, "e"), cell(None), cell(math.nan), cell("zeta"), cell(0.9), cell(False), cell(True)]
    ordered = sorted(cells, key=render.cell_sort_key)
    kinds = [render.classify(item)[0] for item in ordered]
    assert kinds == [
        render.CellKind.FAIL,
        render.CellKind.NUMBER,
        render.CellKind.PASS,
        render.CellKind.TEXT,
        render.CellKind.NAN,
        render.CellKind.NONE,
        render.CellKind.ERROR,
        render.CellKind.MISSING,
    ]


@pytest.mark.parametrize("text", MARKUP_TEXTS)
def test_render_score_shows_user_text_verbatim(text):
    shown = plain(render.render_score(cell(text, rationale=text, name=text), name=text))
    assert shown.count(text) == 3
    error = cell(None, error=text, name="judge")
    shown = plain(render.render_score(error, name="judge", previous=cell(True), has_previous=True))
    assert text in shown
    assert "previous" in shown


# --- spans ----------------------------------------------------------------------------------------------


def make_span(span_id, parent, start, end, name="s", status=SpanStatusCode.OK, span_type="CHAIN", **attributes):
    attrs = {"mlflow.spanType": f'"{span_type}"', "mlflow.traceRequestId": '"tr-1"'}
    attrs.update({key: value for key, value in attributes.items()})
    return Span(
        trace_id="tr-1",
        span_id=span_id,
        parent_id=parent,
        name=name,
        start_time_ns=start,
        end_time_ns=end,
        status=SpanStatus(status),
        attributes=attrs,
    )


def test_span_rows_orders_children_and_draws_guides():
    spans = [
        make_span("c2", "root", 30, 40, "second"),
        make_span("root", None, 0, 100, "root"),
        make_span("c1", "root", 10, 20, "first"),
        make_span("g1", "c1", 11, 12, "grandchild"),
        make_span("orphan", "missing", 50, 60, "orphan"),
    ]
    rows = render.span_rows(spans)
    assert [row.span.name for row in rows] == ["root", "first", "grandchild", "second", "orphan"]
    assert [row.guide for row in rows] == ["", "\u251c\u2500 ", "\u2502  \u2514\u2500 ", "\u2514\u2500 ", ""]


def test_duration_bar_places_span_against_trace():
    assert render.duration_bar(0, 100, 0, 100, 10) == "\u2588" * 10
    assert render.duration_bar(50, 100, 0, 100, 10) == " " * 5 + "\u2588" * 5
    tiny = render.duration_bar(0, 1, 0, 1000, 10)
    assert len(tiny) == 10
    assert tiny[0] != " "
    assert render.duration_bar(0, None, 0, 100, 4) == "\u2588" * 4


def test_span_label_fits_width_and_marks_errors():
    spans = [make_span("root", None, 0, 100, "root [bold]x[/bold]", status=SpanStatusCode.ERROR)]
    row = render.span_rows(spans)[0]
    label = render.span_label(row, 60, 0, 100, 10)
    assert label.cell_len == 60
    assert "root [bold]x[/bold]" in label.plain
    assert "\u2717" in label.plain


# --- payloads ----------------------------------------------------------------------------------------------


def test_chat_messages_found_in_each_layout():
    messages = [{"role": "user", "content": "hi"}]
    assert render.chat_messages(messages) == messages
    assert render.chat_messages({"messages": messages, "model": "m"}) == messages
    response = {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}
    assert render.chat_messages(response) == [{"role": "assistant", "content": "hello"}]
    assert render.chat_messages({"question": "hi"}) is None
    assert render.chat_messages([1, 2]) is None


def test_chat_renders_as_conversation():
    payload = render.render_payload(
        {"messages": [{"role": "system", "content": "be [dim]kind[/]"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    )
    shown = plain(payload.renderable)
    assert "\u258c system" in shown
    assert "be [dim]kind[/]" in shown
    assert "\u258c user" in shown
    assert "  hi" in shown


def test_json_is_highlighted_and_escapes_controls():
    text, cut = render.render_json({"key": "value\x1b", "n": 1, "ok": True, "none": None})
    assert cut == 0
    assert "\x1b" not in text.plain
    assert '"key": "value\\u001b"' in text.plain
    assert any(span.style for span in text.spans)


def test_long_payload_cut_and_shown_all():
    value = "\n".join(f"line {n}" for n in range(2000))
    payload = render.render_payload(value, key="a")
    assert payload.cut_chars > 0
    shown = plain(payload.renderable)
    assert "press a to show all" in shown
    assert "line 1999" not in shown
    whole = render.render_payload(value, show_all=True)
    assert whole.cut_chars == 0
    assert "line 1999" in plain(whole.renderable)


@pytest.mark.parametrize("text", MARKUP_TEXTS)
def test_span_detail_shows_markup_verbatim(text):
    span = make_span(
        "root",
        None,
        0,
        100,
        text,
        **{"mlflow.spanInputs": __import__("json").dumps({"q": text}), "mlflow.spanOutputs": __import__("json").dumps(text), "custom": __import__("json").dumps(text)},
    )
    shown = plain(render.render_span_detail(span, trace_start_ns=0).renderable, width=200)
    assert shown.count(text) >= 2  # name and outputs; inputs and attributes hold it JSON-escaped


def test_error_report_names_file_and_line():
    shown = plain(render.render_error_report("/x/s.py", 7, "SyntaxError: [bold]bad[/bold]", "Traceback\n  line 7"))
    assert "/x/s.py:7" in shown
    assert "SyntaxError: [bold]bad[/bold]" in shown


# --- summary ---------------------------------------------------------------------------------------------------


def test_sparkline_scales_to_peak():
    assert render.sparkline([0, 1, 2, 4]) == "\u00b7\u2583\u2585\u2588"
    assert render.sparkline([0, 0]) == "\u00b7\u00b7"


def test_format_delta_arrows():
    assert render.format_delta(0.75, 0.5).plain == "\u25b20.25"
    assert render.format_delta(0.25, 0.5).plain == "\u25bc0.25"
    assert render.format_delta(0.5, 0.5).plain == "="
    assert render.format_delta(None, 0.5).plain == ""


def test_summary_shows_counts_and_changes():
    current = ScorerStats("see [bold]x[/bold]", count=4, numbers=[1.0, 0.0, 1.0], passed=2, failed=1, errors=1, changed=2)
    before = ScorerStats("see [bold]x[/bold]", count=4, numbers=[0.0, 0.0, 1.0], passed=1, failed=2, errors=1)
    gone = ScorerStats("old", count=3, numbers=[1.0])
    shown = plain(render.render_summary({current.name: current}, {current.name: before, "old": gone}, rows_changed=2, total_rows=4, generation=3))
    assert "see [bold]x[/bold]" in shown
    # The error is left out of the rate, and the line reports it.
    assert "pass 66.7% (2/3, 1 err not counted)" in shown
    assert "\u25b20.333" in shown
    assert "err 1" in shown
    assert "changed 2" in shown
    assert "old  gone in this generation" in shown
    assert "rows changed in the last generation: 2 of 4" in shown


@pytest.mark.parametrize("width", [80, 120, 200])
def test_columns_that_do_not_fit_are_counted(width):
    names = [f"scorer_number_{index}" for index in range(10)]
    columns = layout_columns(width, names)
    shown = [column.title for column in columns if column.id.startswith("score:")]
    assert shown == names[: len(shown)]
    # Every column fits, with the preview still readable.
    assert sum(column.width + 1 for column in columns) <= width + 1
    assert next(column for column in columns if column.id == "request").width >= 12
    if len(shown) < len(names):
        assert columns[-1].id == HIDDEN_COLUMN
        assert columns[-1].title == f"+{len(names) - len(shown)}"
    else:
        assert all(column.id != HIDDEN_COLUMN for column in columns)
