"""Pure parts of the workbench: compact cells, result tables, generation diffs, score CLI helpers."""

from __future__ import annotations

import math

import pytest

from tui_eval.entities import AssessmentError, AssessmentSource, Feedback
from tui_eval.errors import InvalidParameterError
from tui_eval.score_cli import (
    check_thresholds,
    failed_cells,
    format_number,
    parse_thresholds,
    summary_rows,
    visible_text,
)
from tui_eval.workbench.diff import CellChange, diff_results
from tui_eval.workbench.results import (
    GENERATION_KEY,
    MODULE_HASH_KEY,
    SCORER_KEY,
    OverlayResults,
    ResultTable,
    cell_from_feedback,
    cell_is_failure,
    error_cell,
)


def cell(name, value, outcome=None, *, error=None, rationale=None):
    feedback = Feedback(
        name=name,
        value=value,
        error=error,
        rationale=rationale,
        source=AssessmentSource("CODE", name),
        _allow_empty=True,
    )
    if outcome is None and error is not None:
        outcome = "n_error"
    elif outcome is None and isinstance(value, (bool, int, float)):
        outcome = float(value)
    elif outcome is None:
        outcome = "n_other"
    return cell_from_feedback(feedback, outcome)


def table(generation, rows, none=None):
    result = ResultTable(generation, "hash")
    for trace_id, cells in rows.items():
        result.add(trace_id, cells, (none or {}).get(trace_id, ()))
    return result


# --- cells and tables ---------------------------------------------------------------------


def test_cell_round_trip_adds_generation_metadata():
    error = AssessmentError("SCORER_ERROR", "NameError: x", "Traceback ...")
    packed = cell("exact", None, "n_error", error=error, rationale="why")
    result = table(7, {"tr-1": [packed]})

    (feedback,) = result["tr-1"]

    assert feedback.name == "exact"
    assert feedback.trace_id == "tr-1"
    assert feedback.error.error_code == "SCORER_ERROR"
    assert feedback.error.error_message == "NameError: x"
    assert feedback.rationale == "why"
    assert feedback.metadata[GENERATION_KEY] == "7"
    assert feedback.metadata[MODULE_HASH_KEY] == "hash"
    assert feedback.metadata[SCORER_KEY] == "exact"
    assert feedback.source.source_id == "exact"


def test_cell_from_feedback_makes_odd_values_plain():
    packed = cell("tags", {"a": {1, 2}}, "n_other")

    assert packed[1] == {"a": [1, 2]}


def test_table_collects_values_and_counts():
    result = table(
        1,
        {
            "tr-1": [cell("ok", True), cell("len", 10)],
            "tr-2": [cell("ok", False), cell("len", float("nan"), "n_nan")],
            "tr-3": [cell("ok", None, error=AssessmentError("SCORER_ERROR", "boom"))],
        },
        none={"tr-3": ("len",)},
    )

    values, counts = result.collect_values()

    assert values == {"ok": [1.0, 0.0], "len": [10.0]}
    assert counts["ok"]["n_scored"] == 2
    assert counts["ok"]["n_error"] == 1
    assert counts["len"]["n_nan"] == 1
    assert counts["len"]["n_none"] == 1


def test_overlay_prefers_running_generation():
    previous = table(1, {"tr-1": [cell("ok", False)], "tr-2": [cell("ok", False)]})
    current = table(2, {"tr-1": [cell("ok", True)]})

    overlay = OverlayResults(current, previous)

    assert overlay["tr-1"][0].value is True
    assert overlay["tr-2"][0].value is False
    assert set(overlay) == {"tr-1", "tr-2"}
    assert len(overlay) == 2
    assert "tr-3" not in overlay


@pytest.mark.parametrize(
    ("value", "error", "failed"),
    [(False, None, True), ("No", None, True), ("yes", None, False), (0.0, None, False), (None, "E", True)],
)
def test_cell_is_failure(value, error, failed):
    packed = error_cell("s", error, "m") if error else cell("s", value, "n_other")

    assert cell_is_failure(packed) is failed


# --- diffs ----------------------------------------------------------------------------------


def test_diff_classifies_cells():
    old = table(1, {"tr-1": [cell("a", 1), cell("b", 1)], "tr-2": [cell("a", 1)], "tr-3": [cell("a", 5)]})
    new = table(2, {"tr-1": [cell("a", 1), cell("b", 2)], "tr-2": [cell("a", 1), cell("c", 1)]})

    diff = diff_results(old, new, old_scorers=["a", "b"], new_scorers=["a", "b", "c"])

    assert diff.cell("tr-1", "a") is CellChange.UNCHANGED
    assert diff.cell("tr-1", "b") is CellChange.CHANGED
    assert diff.cell("tr-2", "c") is CellChange.NEW
    assert diff.cell("tr-3", "a") is CellChange.REMOVED
    assert (diff.changed, diff.unchanged, diff.new, diff.removed) == (1, 2, 1, 1)
    assert diff.scorers_appeared == ("c",)
    assert diff.scorers_vanished == ()
    assert diff.changed_trace_ids == {"tr-1", "tr-2", "tr-3"}


def test_diff_reports_vanished_scorer_and_column():
    old = table(1, {"tr-1": [cell("a", 1), cell("b", 1)]})
    new = table(2, {"tr-1": [cell("a", 1)]})

    diff = diff_results(old, new, old_scorers=["a", "b"], new_scorers=["a"])

    assert diff.scorers_vanished == ("b",)
    assert diff.columns_vanished == ("b",)
    assert diff.cell("tr-1", "b") is CellChange.REMOVED


def test_diff_treats_nan_as_unchanged():
    old = table(1, {"tr-1": [cell("a", float("nan"), "n_nan")]})
    new = table(2, {"tr-1": [cell("a", float("nan"), "n_nan")]})

    diff = diff_results(old, new)

    assert diff.unchanged == 1
    assert diff.changed == 0


def test_diff_ignores_timestamps_but_sees_rationale():
    old = table(1, {"tr-1": [cell("a", True, rationale="x")]})
    new = table(2, {"tr-1": [cell("a", True, rationale="y")]})

    assert diff_results(old, new).cell("tr-1", "a") is CellChange.CHANGED


def test_diff_aggregates_have_old_new_delta():
    diff = diff_results(
        table(1, {}),
        table(2, {}),
        old_metrics={"a/mean": 0.5, "gone/mean": 1.0},
        new_metrics={"a/mean": 0.75, "b/mean": 2.0},
    )

    assert diff.aggregates["a/mean"].old == 0.5
    assert diff.aggregates["a/mean"].new == 0.75
    assert diff.aggregates["a/mean"].delta == pytest.approx(0.25)
    assert diff.aggregates["b/mean"].delta is None
    assert diff.aggregates["gone/mean"].new is None


def test_first_diff_counts_everything_new():
    diff = diff_results(None, table(1, {"tr-1": [cell("a", 1)]}), new_scorers=["a"])

    assert diff.previous_generation is None
    assert diff.new == 1
    assert diff.scorers_appeared == ()


# --- score CLI helpers -----------------------------------------------------------------------


def test_parse_thresholds_defaults_to_mean():
    assert parse_thresholds(["exact=0.8", "len/p90=12"]) == [("exact/mean", 0.8), ("len/p90", 12.0)]


@pytest.mark.parametrize("spec", ["exact", "=1", "exact=high"])
def test_parse_thresholds_rejects_bad_specs(spec):
    with pytest.raises(InvalidParameterError):
        parse_thresholds([spec])


def test_check_thresholds_reports_missed_and_missing():
    missed = check_thresholds({"a/mean": 0.5, "b/mean": 0.9}, [("a/mean", 0.6), ("b/mean", 0.9), ("c/mean", 0.1)])

    assert len(missed) == 2
    assert missed[0].startswith("a/mean = 0.5 is under")
    assert missed[1].startswith("c/mean is missing")


def test_summary_rows_one_row_per_name():
    header, rows = summary_rows(
        {"a/mean": 0.5, "a/p90": 0.9, "b/mean": 3.0},
        {"a": {"n_scored": 2, "n_error": 1}, "b": {"n_scored": 1}, "c": {"n_error": 4}},
    )

    assert header[:3] == ["scorer", "mean", "p90"]
    assert rows[0][:3] == ["a", 0.5, 0.9]
    assert rows[1][:3] == ["b", 3.0, None]
    assert rows[2][0] == "c"
    assert rows[2][header.index("n_error")] == 4


def test_failed_cells_lists_errors_false_and_no():
    result = table(
        1,
        {"tr-1": [cell("ok", True), cell("ok2", "no", "n_other", rationale="wrong")], "tr-2": [error_cell("ok", "SCORER_TIMEOUT", "timed out after 1 s")]},
    )

    failures = failed_cells(result)

    assert [(f["trace_id"], f["scorer"]) for f in failures] == [("tr-1", "ok2"), ("tr-2", "ok")]
    assert failures[0]["detail"] == "wrong"
    assert failures[1]["detail"] == "timed out after 1 s"


def test_format_number_and_visible_text():
    assert format_number(0.5) == "0.5"
    assert format_number(1.0) == "1"
    assert format_number(2 / 3) == "0.6667"
    assert format_number(math.nan) == "nan"
    assert visible_text("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
