"""Unit tests of the list model, the filter language and the view export."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest

from tui_eval.entities import Feedback
from tui_eval.errors import FilterError
from tui_eval.tui.export import write_view
from tui_eval.tui.model import Row, TraceListModel, compute_stats
from tui_eval.tui.query import compile_query


def summary(index: int, request: str = "", **fields):
    values = dict(
        trace_id=f"tr-{index}",
        name="answer",
        request_time=10_000 - index,
        execution_duration=100 * index,
        state="OK",
        request_preview=request or f"question {index}",
        response_preview=f"answer {index}",
        total_tokens=index,
        span_count=3,
    )
    values.update(fields)
    return SimpleNamespace(**values)


def model_with(count: int = 5) -> TraceListModel:
    model = TraceListModel()
    model.add_summaries(summary(index) for index in range(count))
    model.rebuild_view()
    return model


def ids(model: TraceListModel) -> list[str]:
    return [row.trace_id for row in model.view]


def test_rows_keep_single_line_previews():
    row = Row.from_summary(summary(1, request="line one\nline two\x1b[0m" + "x" * 2000))
    assert "\n" not in row.request
    assert "\x1b" not in row.request
    assert len(row.request) <= 240


def test_first_generation_marks_nothing_changed():
    model = model_with()
    model.begin_generation(1)
    touched = model.apply_results(1, {"tr-1": [Feedback("em", True)]})
    assert [row.trace_id for row in touched] == ["tr-1"]
    assert model.by_id["tr-1"].changed == frozenset()
    assert model.columns == ["em"]


def test_next_generation_marks_changed_cells():
    model = model_with()
    model.begin_generation(1)
    model.apply_results(1, {"tr-1": [Feedback("em", True), Feedback("s", 0.5)], "tr-2": [Feedback("em", True)]})
    model.begin_generation(2)
    model.apply_results(2, {"tr-1": [Feedback("em", False), Feedback("s", 0.5)], "tr-2": [Feedback("em", True)]})
    assert model.by_id["tr-1"].changed == {"em"}
    assert model.by_id["tr-2"].changed == frozenset()
    assert model.by_id["tr-1"].previous["em"][1] is True
    assert model.changed_rows() == 1


def test_vanished_scorer_is_changed_and_dropped():
    model = model_with()
    model.begin_generation(1)
    model.apply_results(1, {"tr-1": [Feedback("em", True), Feedback("old", 1)]})
    model.begin_generation(2)
    model.apply_results(2, {"tr-1": [Feedback("em", True)]})
    assert model.by_id["tr-1"].changed == {"old"}
    assert model.finish_generation(2) == ["old"]
    assert model.columns == ["em"]


def test_finished_columns_follow_module_order():
    model = model_with()
    model.begin_generation(1)
    # The first trace has no value for "first" (its scorer returned None), so it comes last.
    model.apply_results(1, {"tr-1": [Feedback("second", 1), Feedback("extra", 2)]})
    model.apply_results(1, {"tr-2": [Feedback("first", True), Feedback("second", 3)]})
    assert model.columns == ["second", "extra", "first"]
    model.finish_generation(1, ("first", "second"))
    assert model.columns == ["first", "second", "extra"]


def test_nan_to_nan_is_unchanged():
    model = model_with()
    model.begin_generation(1)
    model.apply_results(1, {"tr-1": [Feedback("s", math.nan)]})
    model.begin_generation(2)
    model.apply_results(2, {"tr-1": [Feedback("s", math.nan)]})
    assert model.by_id["tr-1"].changed == frozenset()


def test_load_scores_sets_cells_without_changes():
    model = model_with()
    model.load_scores({"tr-3": [Feedback("em", False)], "tr-unknown": [Feedback("em", True)]}, generation=4)
    assert model.by_id["tr-3"].scores["em"][1] is False
    assert model.by_id["tr-3"].generation == 4
    assert model.by_id["tr-3"].changed == frozenset()


def scored_model() -> TraceListModel:
    model = model_with(6)
    model.begin_generation(1)
    model.apply_results(
        1,
        {
            "tr-0": [Feedback("exact_match", True), Feedback("score", 0.9)],
            "tr-1": [Feedback("exact_match", False), Feedback("score", 0.2)],
            "tr-2": [Feedback("exact_match", "no"), Feedback("score", math.nan)],
            "tr-3": [Feedback("exact_match", None, error="boom"), Feedback("score", 0.4)],
            "tr-4": [Feedback("exact_match", "yes"), Feedback("score", None, _allow_empty=True)],
        },
    )
    model.begin_generation(2)
    model.apply_results(2, {"tr-0": [Feedback("exact_match", False), Feedback("score", 0.9)]})
    return model


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exact_match=false", ["tr-0", "tr-1", "tr-2"]),
        ("exact_match=true", ["tr-4"]),
        ("exact_match=yes", ["tr-4"]),
        ("score<0.5", ["tr-1", "tr-3"]),
        ("score>=0.9", ["tr-0"]),
        ("score=nan", ["tr-2"]),
        ("score=none", ["tr-4"]),
        ("exact_match=error", ["tr-3"]),
        ("error", ["tr-3"]),
        ("changed", ["tr-0"]),
        ("fail", ["tr-0", "tr-1", "tr-2", "tr-3"]),
        ("not fail", ["tr-4", "tr-5"]),
        ("-error", ["tr-0", "tr-1", "tr-2", "tr-4", "tr-5"]),
        ("3 question", ["tr-3"]),
        ('"3 question"', []),
        ('"question 3"', ["tr-3"]),
        ("answer 4", ["tr-4"]),
        ("QUESTION and score<0.5", ["tr-1", "tr-3"]),
        ("duration>=300", ["tr-3", "tr-4", "tr-5"]),
        ("duration<0.15s", ["tr-0", "tr-1"]),
        ("tokens=2", ["tr-2"]),
        ("state=ok", ["tr-0", "tr-1", "tr-2", "tr-3", "tr-4", "tr-5"]),
        ("trace_id~tr-5", ["tr-5"]),
    ],
)
def test_filter_expressions(text, expected):
    model = scored_model()
    model.set_query(compile_query(text))
    assert sorted(ids(model)) == expected


@pytest.mark.parametrize("text", ['"open', "score<abc", "duration<soon", "state<3", "not", "score="])
def test_invalid_filters_raise(text):
    with pytest.raises(FilterError):
        compile_query(text)


def test_empty_filter_is_none():
    assert compile_query("   ") is None


def test_toggles_combine_with_filter():
    model = scored_model()
    model.only_failures = True
    model.rebuild_view()
    assert sorted(ids(model)) == ["tr-0", "tr-1", "tr-2", "tr-3"]
    model.only_changed = True
    model.rebuild_view()
    assert ids(model) == ["tr-0"]
    model.set_query(compile_query("answer 1"))
    assert ids(model) == []


def test_sort_by_every_column():
    model = scored_model()
    for column in model.sort_columns():
        model.sort_by(column, reverse=False)
        assert len(model.view) == 6
    model.sort_by("duration", reverse=True)
    assert ids(model)[0] == "tr-5"
    model.sort_by("score:score", reverse=False)
    assert ids(model)[:3] == ["tr-1", "tr-3", "tr-0"]
    model.sort_by("score:score")
    assert model.sort_reverse is True


def test_sort_default_is_newest_first():
    model = model_with(4)
    assert ids(model) == ["tr-0", "tr-1", "tr-2", "tr-3"]
    model.sort_by("time", reverse=False)
    assert ids(model) == ["tr-3", "tr-2", "tr-1", "tr-0"]


def test_stats_counts_every_kind():
    model = scored_model()
    current, previous = model.stats()
    exact = current["exact_match"]
    assert (exact.passed, exact.failed, exact.errors) == (1, 3, 1)
    assert exact.pass_rate == 0.25
    assert exact.changed == 1
    score = current["score"]
    assert score.nans == 1
    assert score.nones == 1
    assert score.mean == pytest.approx((0.9 + 0.2 + 0.4) / 3)
    assert previous["exact_match"].passed == 1
    assert previous["exact_match"].count == 1


def test_stats_steps_match_one_pass():
    model = scored_model()
    steps = model.stats_steps(chunk=2)
    taken = 0
    while True:
        try:
            next(steps)
            taken += 1
        except StopIteration as done:
            current, previous, changed = done.value
            break
    # Three chunks of rows, then one histogram per name and side.
    assert taken == 3 + 2 * len(model.columns)
    assert (current, previous) == model.stats()
    assert changed == model.changed_rows()
    assert current["exact_match"].buckets == model.stats()[0]["exact_match"].histogram()


def test_histogram_buckets():
    stats = compute_stats([], ["x"])["x"]
    stats.numbers = [0.0, 0.1, 0.5, 1.0]
    assert stats.histogram(4) == [2, 0, 1, 1]


def test_export_csv_and_jsonl(tmp_path):
    model = scored_model()
    rows, columns = model.view, model.columns
    assert write_view(tmp_path / "view.csv", rows, columns) == 6
    with (tmp_path / "view.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table[3]["exact_match.error"].startswith("ASSESSMENT_ERROR: boom")
    assert table[0]["exact_match"] == "False"
    assert write_view(tmp_path / "view.jsonl", rows, columns) == 6
    records = [json.loads(line) for line in (tmp_path / "view.jsonl").read_text().splitlines()]
    assert records[2]["scores"]["score"]["value"] == "nan"
    assert records[0]["scores"]["exact_match"]["value"] is False


def test_export_rejects_unknown_extension(tmp_path):
    with pytest.raises(Exception, match="use .csv or .jsonl"):
        write_view(tmp_path / "view.xlsx", [], [])
