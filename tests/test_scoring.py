"""The store-free scoring core: result normalisation, naming, errors, aggregation and counts."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import types

import numpy as np
import pytest

from tui_eval.entities import AssessmentError, AssessmentSource, Expectation, Feedback, Trace
from tui_eval.errors import InvalidParameterError, ScorerLoadError
from tui_eval.genai import Scorer, scorer
from tui_eval.genai.scoring import (
    ScoringItem,
    compute_counts,
    compute_metrics,
    discover_scorers,
    item_from_trace,
    run_scorer,
    score_items,
    validate_aggregations,
)

ITEM = ScoringItem("tr-1", inputs={"question": "q"}, outputs="a reply", expectations={"expected": "a reply"})

# A two-span trace (root CHAIN, child CHAT_MODEL) with one expectation, in MLflow's JSON layout.
TRACE_JSON = {
    "info": {
        "trace_id": "tr-3f2a9c0d5e6b47a18c2d4e5f60718293",
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}},
        "request_time": "2025-06-01T12:00:00.250Z",
        "execution_duration_ms": 812,
        "state": "OK",
        "trace_metadata": {},
        "tags": {},
        "assessments": [
            {
                "assessment_name": "expected_response",
                "trace_id": "tr-3f2a9c0d5e6b47a18c2d4e5f60718293",
                "source": {"source_type": "HUMAN", "source_id": "alice"},
                "create_time": "2025-06-01T12:05:00Z",
                "last_update_time": "2025-06-01T12:05:00Z",
                "expectation": {"value": "Yes, IP68."},
            }
        ],
    },
    "data": {
        "spans": [
            {
                "trace_id": "PyqcDV5rR6GMLU5fYHGCkw==",
                "span_id": "Gis8TV5vcIE=",
                "parent_span_id": None,
                "name": "answer_question",
                "start_time_unix_nano": 1748779200250000000,
                "end_time_unix_nano": 1748779201062000000,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {
                    "mlflow.traceRequestId": '"tr-3f2a9c0d5e6b47a18c2d4e5f60718293"',
                    "mlflow.spanType": '"CHAIN"',
                    "mlflow.spanInputs": '{"messages": [{"role": "user", "content": "Is the X100 waterproof?"}]}',
                    "mlflow.spanOutputs": '"Yes, the X100 is rated IP68."',
                },
            },
            {
                "trace_id": "PyqcDV5rR6GMLU5fYHGCkw==",
                "span_id": "nI1+b1pLPC0=",
                "parent_span_id": "Gis8TV5vcIE=",
                "name": "Completions",
                "start_time_unix_nano": 1748779200300000000,
                "end_time_unix_nano": 1748779201000000000,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {
                    "mlflow.traceRequestId": '"tr-3f2a9c0d5e6b47a18c2d4e5f60718293"',
                    "mlflow.spanType": '"CHAT_MODEL"',
                    "mlflow.spanInputs": '{"model": "m", "messages": []}',
                    "mlflow.spanOutputs": '{"choices": []}',
                },
            },
        ]
    },
}


def score_one(scorer_object, item=ITEM):
    return run_scorer(scorer_object, item)


# --- result normalisation -----------------------------------------------------------------


@pytest.mark.parametrize("value", [True, 3, 0.25, "yes"])
def test_primitive_becomes_code_feedback(value):
    @scorer
    def primitive(outputs):
        return value

    [cell] = score_one(primitive)
    assert cell.name == "primitive"
    assert cell.value == value
    assert type(cell.value) is type(value)
    assert cell.error is None
    assert cell.source == AssessmentSource("CODE", "primitive")
    assert cell.trace_id == "tr-1"


def test_none_result_gives_no_feedback():
    @scorer
    def nothing(outputs):
        return None

    assert score_one(nothing) == []


@pytest.mark.parametrize(
    ("value", "expected", "expected_type"),
    [
        (np.float64(0.7), 0.7, float),
        (np.float32(0.5), 0.5, float),
        (np.int64(3), 3, int),
        (np.bool_(True), True, bool),
        (np.str_("yes"), "yes", str),
    ],
)
def test_numpy_scalar_becomes_python_value(value, expected, expected_type):
    @scorer
    def numeric(outputs):
        return value

    [cell] = score_one(numeric)
    assert cell.error is None
    assert cell.value == expected
    assert type(cell.value) is expected_type


def test_numpy_value_inside_feedback_becomes_python_value():
    @scorer
    def wrapped(outputs):
        return Feedback(value=np.int64(7))

    [cell] = score_one(wrapped)
    assert type(cell.value) is int


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({"score": 1}, "dict"),
        ((1, 2), "tuple"),
        ([1, 2], "list[int]"),
        (["a"], "list[str]"),
        (np.array([1.0, 2.0]), "numpy.ndarray"),
        ({1, 2}, "set"),
    ],
)
def test_invalid_result_is_error_cell(value, type_name):
    @scorer
    def invalid(outputs):
        return value

    [cell] = score_one(invalid)
    assert cell.name == "invalid"
    assert cell.value is None
    assert cell.error.error_code == "SCORER_ERROR"
    message = cell.error.error_message
    assert f"returned {type_name}" in message
    for allowed in ("bool", "int", "float", "str", "Feedback", "list of Feedback", "None"):
        assert allowed in message


def test_expectation_result_is_error_cell():
    @scorer
    def expects(outputs):
        return Expectation(name="expected", value="x")

    [cell] = score_one(expects)
    assert cell.error.error_code == "SCORER_ERROR"
    assert "Expectation" in cell.error.error_message


def test_unnamed_feedback_takes_scorer_name():
    @scorer
    def decorator_unnamed_feedback(outputs):
        return Feedback(value=True, rationale="good")

    [cell] = score_one(decorator_unnamed_feedback)
    assert cell.name == "decorator_unnamed_feedback"
    assert cell.rationale == "good"


def test_named_feedback_keeps_name():
    @scorer
    def decorator_feedback_named(outputs):
        return Feedback(name="decorator_named_feedback", value=True)

    [cell] = score_one(decorator_feedback_named)
    assert cell.name == "decorator_named_feedback"


def test_feedback_flagged_unnamed_takes_scorer_name():
    @scorer
    def flagged(outputs):
        return Feedback(name="judge", value=1, metadata={"_user_defined_assessment_name": "false"})

    [cell] = score_one(flagged)
    assert cell.name == "flagged"


def test_feedback_source_and_metadata_kept():
    @scorer
    def content_quality(outputs):
        return Feedback(
            value=0.85,
            source=AssessmentSource("HUMAN", "grammar_checker_v1"),
            metadata={"annotator": "me@example.com"},
        )

    [cell] = score_one(content_quality)
    assert cell.source == AssessmentSource("HUMAN", "grammar_checker_v1")
    assert cell.metadata == {"annotator": "me@example.com"}


def test_list_of_feedback_keeps_order_and_names():
    @scorer
    def comprehensive_check(inputs, outputs):
        return [
            Feedback(name="relevance", value=True),
            Feedback(name="tone", value="professional"),
            Feedback(name="length", value=150),
        ]

    cells = score_one(comprehensive_check)
    assert [cell.name for cell in cells] == ["relevance", "tone", "length"]
    assert [cell.value for cell in cells] == [True, "professional", 150]
    assert all(cell.trace_id == "tr-1" for cell in cells)


def test_unnamed_feedbacks_in_list_share_scorer_name():
    @scorer
    def twice(outputs):
        return [Feedback(value=1), Feedback(value=0)]

    cells = score_one(twice)
    assert [cell.name for cell in cells] == ["twice", "twice"]
    assert compute_metrics([twice], cells) == {"twice/mean": 0.5}


def test_empty_list_gives_no_feedback():
    @scorer
    def empty(outputs):
        return []

    assert score_one(empty) == []


def test_list_with_primitive_is_error_cell():
    @scorer
    def mixed(outputs):
        return [Feedback(value=1), 2]

    [cell] = score_one(mixed)
    assert "returned list[int]" in cell.error.error_message


def test_same_feedback_object_gives_separate_cells():
    shared = Feedback(value=1.0)

    @scorer
    def constant(outputs):
        return shared

    items = [ScoringItem("tr-a", outputs="x"), ScoringItem("tr-b", outputs="y")]
    results = dict(score_items([constant], items))
    assert results["tr-a"][0].trace_id == "tr-a"
    assert results["tr-b"][0].trace_id == "tr-b"
    assert results["tr-a"][0] is not results["tr-b"][0]
    # The scorer's own object is left as it was.
    assert shared.name == "feedback"
    assert shared.trace_id is None


# --- errors ---------------------------------------------------------------------------------


def test_raise_becomes_one_scorer_error():
    @scorer
    def is_message_relevant(inputs, outputs):
        raise ValueError("no user message found")

    [cell] = score_one(is_message_relevant)
    assert cell.name == "is_message_relevant"
    assert cell.value is None
    assert cell.source == AssessmentSource("CODE", "is_message_relevant")
    assert cell.error.error_code == "SCORER_ERROR"
    assert cell.error.error_message == "ValueError: no user message found"


def helper_that_fails(text):
    return text.get("response")


def test_traceback_starts_at_user_frames():
    @scorer
    def resilient_scorer(outputs, trace=None):
        return helper_that_fails(outputs)

    [cell] = score_one(resilient_scorer)
    stack = cell.error.stack_trace
    assert stack.startswith("Traceback (most recent call last):")
    assert "in resilient_scorer" in stack
    assert "in helper_that_fails" in stack
    assert "AttributeError" in stack
    assert "genai/scoring.py" not in stack
    assert "genai/scorers.py" not in stack


def test_async_traceback_starts_at_user_frames():
    @scorer
    async def async_fails(outputs):
        await asyncio.sleep(0)
        raise RuntimeError("judge unavailable")

    [cell] = score_one(async_fails)
    assert cell.error.error_message == "RuntimeError: judge unavailable"
    first_frame = cell.error.stack_trace.splitlines()[1]
    assert "in async_fails" in first_frame


def test_async_scorer_inside_running_loop():
    @scorer
    async def async_length(outputs):
        await asyncio.sleep(0)
        return len(outputs)

    async def main():
        return run_scorer(async_length, ITEM)

    [cell] = asyncio.run(main())
    assert cell.value == len("a reply")


def test_system_exit_is_error_cell():
    @scorer
    def exits(outputs):
        sys.exit(3)

    [cell] = score_one(exits)
    assert cell.error.error_code == "SCORER_ERROR"
    assert "SystemExit" in cell.error.error_message


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (AssessmentError("MISSING_RESPONSE", "no response key"), "MISSING_RESPONSE", "no response key"),
        ("plain text problem", "ASSESSMENT_ERROR", "plain text problem"),
        (json.JSONDecodeError("Expecting value", "x", 0), "JSONDecodeError", "Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_feedback_error_kept_as_returned(error, code, message):
    @scorer
    def is_valid_response(outputs):
        return Feedback(value=None, error=error)

    [cell] = score_one(is_valid_response)
    assert cell.name == "is_valid_response"
    assert cell.error.error_code == code
    assert cell.error.error_message == message
    assert compute_metrics([is_valid_response], [cell]) == {}
    assert compute_counts([cell])["is_valid_response"]["n_error"] == 1


# --- scoring many items -----------------------------------------------------------------------


def test_score_items_keeps_item_and_scorer_order():
    @scorer
    def first(outputs):
        return len(outputs)

    @scorer
    def second(inputs):
        return "q" in inputs

    items = [ScoringItem(f"tr-{index}", inputs={"q": 1}, outputs="x" * index) for index in range(5)]
    results = list(score_items([first, second], items))
    assert [trace_id for trace_id, _ in results] == [f"tr-{index}" for index in range(5)]
    for index, (_, cells) in enumerate(results):
        assert [cell.name for cell in cells] == ["first", "second"]
        assert cells[0].value == index


def test_score_items_counts_none_results():
    @scorer
    def sometimes(outputs):
        return None if outputs == "skip" else 1

    none_counts: dict[str, int] = {}
    items = [ScoringItem("a", outputs="skip"), ScoringItem("b", outputs="x"), ScoringItem("c", outputs="skip")]
    results = dict(score_items([sometimes], items, none_counts=none_counts))
    assert results["a"] == []
    assert none_counts == {"sometimes": 2}
    counts = compute_counts([cell for cells in results.values() for cell in cells], none_counts=none_counts)
    assert counts["sometimes"] == {"n_scored": 1, "n_nan": 0, "n_none": 2, "n_error": 0, "n_other": 0}


def test_six_trace_case_mean_and_counts():
    values = {"t1": 0.9, "t2": float("nan"), "t3": 0.85, "t4": None, "t5": np.float64(0.7)}

    @scorer
    def score(inputs):
        if inputs not in values:
            raise KeyError(inputs)
        return values[inputs]

    items = [ScoringItem(key, inputs=key) for key in ("t1", "t2", "t3", "t4", "t5", "t6")]
    none_counts: dict[str, int] = {}
    results = dict(score_items([score], items, none_counts=none_counts))

    assert results["t1"][0].value == 0.9
    assert math.isnan(results["t2"][0].value)
    assert results["t4"] == []
    assert type(results["t5"][0].value) is float
    assert results["t6"][0].error.error_code == "SCORER_ERROR"

    feedbacks = [cell for cells in results.values() for cell in cells]
    metrics = compute_metrics([score], feedbacks)
    assert metrics["score/mean"] == pytest.approx((0.9 + 0.85 + 0.7) / 3)
    assert metrics["score/mean"] == pytest.approx(0.8167, abs=1e-4)
    counts = compute_counts(feedbacks, none_counts=none_counts)["score"]
    assert counts["n_scored"] == 3
    assert counts["n_nan"] == 1
    assert counts["n_none"] == 1
    assert counts["n_error"] == 1


# --- traces as items --------------------------------------------------------------------------


def test_item_from_trace_uses_root_span_and_expectations():
    trace = Trace.from_dict(TRACE_JSON)
    item = item_from_trace(trace)
    assert item.trace_id == "tr-3f2a9c0d5e6b47a18c2d4e5f60718293"
    assert item.inputs == {"messages": [{"role": "user", "content": "Is the X100 waterproof?"}]}
    assert item.outputs == "Yes, the X100 is rated IP68."
    assert item.expectations == {"expected_response": "Yes, IP68."}
    assert item.trace is trace


def test_item_from_trace_without_spans():
    data = json.loads(json.dumps(TRACE_JSON))
    data["data"]["spans"] = []
    data["info"]["assessments"] = []
    item = item_from_trace(Trace.from_dict(data))
    assert item.inputs is None
    assert item.outputs is None
    assert item.expectations == {}


def test_trace_scorer_reads_chat_model_span():
    @scorer
    def llm_response_time_good(trace):
        span = trace.search_spans(span_type="CHAT_MODEL")[0]
        seconds = (span.end_time_ns - span.start_time_ns) / 1e9
        return Feedback(value="yes" if seconds <= 5.0 else "no", rationale=f"{seconds:.2f}s")

    [cell] = run_scorer(llm_response_time_good, item_from_trace(Trace.from_dict(TRACE_JSON)))
    assert cell.value == "yes"
    assert cell.rationale == "0.70s"


# --- aggregation ------------------------------------------------------------------------------


def feedback(name, value=None, error=None):
    return Feedback(name=name, value=value, error=error, _allow_empty=True)


def test_builtin_aggregations_match_numpy():
    @scorer(aggregations=["min", "max", "mean", "median", "variance", "p90"])
    def quality(outputs):
        return 0

    numbers = [0.1, 0.5, 0.2, 0.9, 0.4, 1.0, 0.3]
    metrics = compute_metrics([quality], [feedback("quality", value) for value in numbers])
    assert metrics == {
        "quality/min": 0.1,
        "quality/max": 1.0,
        "quality/mean": pytest.approx(float(np.mean(numbers))),
        "quality/median": pytest.approx(float(np.median(numbers))),
        "quality/variance": pytest.approx(float(np.var(numbers))),
        "quality/p90": pytest.approx(float(np.percentile(numbers, 90))),
    }


def test_default_aggregation_is_mean():
    @scorer
    def plain(outputs):
        return 0

    metrics = compute_metrics([plain], [feedback("plain", 1), feedback("plain", 2)])
    assert metrics == {"plain/mean": 1.5}


def test_empty_aggregation_list_gives_no_metric():
    @scorer(aggregations=[])
    def silent(outputs):
        return 0

    assert compute_metrics([silent], [feedback("silent", 1)]) == {}


def test_callable_aggregation_named_by_function():
    def spread(values):
        return max(values) - min(values)

    def broken(values):
        raise ZeroDivisionError("no")

    @scorer(aggregations=["mean", spread, broken])
    def custom(outputs):
        return 0

    metrics = compute_metrics([custom], [feedback("custom", 1), feedback("custom", 4)])
    assert metrics == {"custom/mean": 2.5, "custom/spread": 3.0}


def test_yes_no_count_as_one_and_zero():
    @scorer
    def contains_citation(outputs):
        return "yes"

    cells = [feedback("contains_citation", value) for value in ("yes", "No", "YES", "maybe")]
    assert compute_metrics([contains_citation], cells) == {"contains_citation/mean": pytest.approx(2 / 3)}
    assert compute_counts(cells)["contains_citation"]["n_other"] == 1


def test_left_out_values_are_counted():
    cells = [
        feedback("m", 1.0),
        feedback("m", True),
        feedback("m", float("nan")),
        feedback("m", float("inf")),
        feedback("m", None),
        feedback("m", "fine"),
        feedback("m", {"a": 1}),
        feedback("m", error=AssessmentError("SCORER_ERROR", "x")),
    ]
    assert compute_metrics([], cells) == {"m/mean": 1.0}
    assert compute_counts(cells) == {"m": {"n_scored": 2, "n_nan": 2, "n_none": 1, "n_error": 1, "n_other": 2}}


def test_name_without_numbers_gives_no_metric():
    assert compute_metrics([], [feedback("tone", "professional")]) == {}


def test_aggregations_apply_by_name_after_first_slash():
    @scorer(name="scorer1", aggregations=["max"])
    def first(outputs):
        return 0

    cells = [feedback("foo/scorer1", 1), feedback("foo/scorer1", 3), feedback("other", 2)]
    assert compute_metrics([first], cells) == {"foo/scorer1/max": 3.0, "other/mean": 2.0}


def test_named_feedback_uses_matching_scorer_aggregations():
    @scorer(name="length", aggregations=["min"])
    def length_scorer(outputs):
        return 0

    @scorer(aggregations=["max"])
    def checker(outputs):
        return [Feedback(name="length", value=5), Feedback(name="extra", value=1)]

    cells = score_one(checker)
    # "length" matches the other scorer's name, so it gets that scorer's aggregations.
    assert compute_metrics([length_scorer, checker], cells) == {"length/min": 5.0, "extra/mean": 1.0}


def test_expectations_ignored_in_metrics():
    cells = [feedback("x", 1), Expectation(name="x", value=5)]
    assert compute_metrics([], cells) == {"x/mean": 1.0}


def test_invalidated_feedback_ignored():
    stale = feedback("x", 100)
    stale.valid = False
    assert compute_metrics([], [feedback("x", 1), stale]) == {"x/mean": 1.0}


def test_unknown_aggregation_rejected():
    @scorer(aggregations=["mean", "p99"])
    def typo(outputs):
        return 0

    with pytest.raises(InvalidParameterError) as caught:
        validate_aggregations([typo])
    assert "'p99'" in str(caught.value)
    assert "p90" in str(caught.value)


def test_non_callable_aggregation_rejected():
    with pytest.raises(ValueError):

        @scorer(aggregations=[3])
        def number(outputs):
            return 0


# --- discovery --------------------------------------------------------------------------------


def make_module(source: str) -> types.ModuleType:
    module = types.ModuleType("user_scorers")
    exec(compile(source, "user_scorers.py", "exec"), module.__dict__)
    return module


def test_discover_module_level_scorers_in_order():
    module = make_module(
        "from tui_eval.genai import scorer, Scorer\n"
        "@scorer\ndef b(outputs): return 1\n"
        "@scorer\ndef a(outputs): return 2\n"
        "alias = a\n"
        "class C(Scorer):\n    name: str = 'c'\n    def __call__(self, outputs): return 3\n"
        "c = C()\n"
        "def not_a_scorer(outputs): return 4\n"
    )
    assert [item.name for item in discover_scorers(module)] == ["b", "a", "c"]


def test_discover_prefers_scorers_list():
    module = make_module(
        "from tui_eval.genai import scorer\n"
        "@scorer\ndef b(outputs): return 1\n"
        "@scorer\ndef a(outputs): return 2\n"
        "SCORERS = [a]\n"
    )
    assert [item.name for item in discover_scorers(module)] == ["a"]


def test_discover_rejects_class_in_scorers_list():
    module = make_module(
        "from tui_eval.genai import Scorer\n"
        "class C(Scorer):\n    name: str = 'c'\n"
        "SCORERS = [C]\n"
    )
    with pytest.raises(ScorerLoadError) as caught:
        discover_scorers(module)
    assert "C()" in str(caught.value)


def test_discover_empty_module():
    assert discover_scorers(make_module("x = 1\n")) == []


def test_scorer_subclass_is_not_discovered():
    module = make_module(
        "from tui_eval.genai import Scorer\n"
        "class C(Scorer):\n    name: str = 'c'\n"
    )
    assert discover_scorers(module) == []
    assert isinstance(Scorer, type)
