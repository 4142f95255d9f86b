"""evaluate() against a real SQLite store: data forms, predict_fn, validation, stored results."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import sqlite3

import numpy as np
import pandas
import pytest

from tui_eval.entities import AssessmentError, AssessmentSource, Feedback, SpanType, Trace
from tui_eval.errors import InvalidParameterError
from tui_eval.genai import EvaluationResult, Scorer, evaluate, scorer
from tui_eval.tracing import provider, recorder, search_traces, start_span, trace


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TUI_EVAL_PROGRESS", "0")
    provider.reset()
    recorder.clear()
    provider.set_tracking_uri(tmp_path / "traces.db")
    yield provider.get_store()
    provider.reset()
    recorder.clear()


def table_count(store, table: str) -> int:
    with sqlite3.connect(store.path) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# --- the scorers of MLflow's test_evaluation.py on a two-row static set -------------------------


@scorer
def exact_match(outputs, expectations):
    return outputs == expectations["expected_response"]


@scorer
def is_concise(outputs, expectations):
    return len(outputs) <= expectations["max_length"]


@scorer
def relevance(inputs, outputs):
    return Feedback(name="relevance", value="yes", source=AssessmentSource("LLM_JUDGE", "judge"))


@scorer
@trace(span_type=SpanType.EVALUATOR)
def has_trace(trace):
    return trace is not None


STATIC_ROWS = [
    {
        "inputs": {"question": "What is MLflow?"},
        "outputs": "MLflow is an open-source platform.",
        "expectations": {"expected_response": "MLflow is an open-source platform.", "max_length": 100},
    },
    {
        "inputs": {"question": "What is Spark?"},
        "outputs": "Spark is a distributed engine for large data, with many long words in it here.",
        "expectations": {
            "expected_response": "Spark is a distributed engine for large data, with many long words in it here.",
            "max_length": 10,
        },
    },
]


def test_static_rows_metrics(store):
    result = evaluate(STATIC_ROWS, [exact_match, is_concise, relevance, has_trace])

    assert isinstance(result, EvaluationResult)
    assert result.metrics == {
        "exact_match/mean": 1.0,
        "is_concise/mean": 0.5,
        "relevance/mean": 1.0,
        "has_trace/mean": 1.0,
    }
    assert store.get_run(result.run_id)["status"] == "FINISHED"
    assert store.get_run(result.run_id)["metrics"] == result.metrics


def test_static_rows_get_minimal_traces(store):
    result = evaluate(STATIC_ROWS, [exact_match])
    frame = result.result_df

    assert len(frame) == 2
    for position, row in frame.iterrows():
        [span] = row["spans"]
        assert span["name"] == "root_span"
        assert json.loads(span["attributes"]["mlflow.spanType"]) == "CHAIN"
        assert row["request"] == STATIC_ROWS[position]["inputs"]
        assert row["response"] == STATIC_ROWS[position]["outputs"]
        assert row["trace_metadata"]["mlflow.sourceRun"] == result.run_id


def test_result_df_columns(store):
    result = evaluate(STATIC_ROWS, [exact_match, is_concise])
    columns = list(result.result_df.columns)

    assert columns[0] == "trace_id"
    value_columns = [column for column in columns if column.endswith("/value")]
    assert set(value_columns) == {
        "exact_match/value",
        "is_concise/value",
        "expected_response/value",
        "max_length/value",
    }
    assert columns[1 : 1 + len(value_columns)] == value_columns
    standard = Trace.pandas_dataframe_columns()[1:]
    start = 1 + len(value_columns)
    assert columns[start : start + len(standard)] == standard
    assert columns[start + len(standard) :] == [
        "exact_match/rationale",
        "exact_match/error",
        "is_concise/rationale",
        "is_concise/error",
    ]
    assert result.result_df["is_concise/value"].tolist() == [True, False]
    assert result.tables["eval_results"] is result.result_df


def test_expectations_stored_with_no_scorers(store):
    result = evaluate(STATIC_ROWS, [])

    assert result.metrics == {}
    [trace_id] = result.result_df["trace_id"].tolist()[:1]
    stored = store.get_trace(trace_id)
    expectations = {item.name: item for item in stored.search_assessments(type="expectation")}
    assert set(expectations) == {"expected_response", "max_length"}
    assert expectations["max_length"].value == 100
    assert expectations["max_length"].source.source_type == "HUMAN"
    assert expectations["max_length"].run_id == result.run_id


# --- the code-examples catalogue, generated with predict_fn -------------------------------------


def _chat_span(answer: str, delay_ns: int = 0) -> None:
    with start_span("Completions", span_type=SpanType.CHAT_MODEL) as span:
        span.set_inputs({"model": "gpt-4o-mini"})
        span.set_outputs({"choices": [{"message": {"role": "assistant", "content": answer}}]})


ANSWERS = {
    "How do I reset my password?": "# Summary\nUse the reset link.\n# Sources\n[source] help centre",
    "What is the return window?": "Returns are accepted within 30 days.",
}


@trace
def sample_app(messages: list[dict[str, str]]) -> str:
    question = next((item["content"] for item in reversed(messages) if item["role"] == "user"), "")
    answer = ANSWERS.get(question, "I can only help with support questions.")
    _chat_span(answer)
    return answer


@scorer
def placeholder_metric() -> int:
    return 1


@scorer
def llm_response_time_good(trace: Trace) -> Feedback:
    span = trace.search_spans(span_type=SpanType.CHAT_MODEL)[0]
    seconds = (span.end_time_ns - span.start_time_ns) / 1e9
    return Feedback(value="yes" if seconds <= 5.0 else "no", rationale=f"took {seconds:.3f}s")


@scorer
def is_message_relevant(inputs: dict, outputs: str) -> Feedback:
    user_messages = [item for item in inputs["messages"] if item["role"] == "user"]
    if not user_messages:
        raise ValueError("no user message in the conversation")
    # Stands in for the LLM judge of the original example.
    return Feedback(value="yes")


@scorer
def keyword_presence_scorer(outputs: str, expectations: dict) -> Feedback:
    keywords = expectations.get("expected_keywords")
    print(keywords)
    if not keywords:
        return Feedback(value="yes", rationale="none expected")
    missing = [word for word in keywords if word.lower() not in outputs.lower()]
    if missing:
        return Feedback(value="no", rationale=f"missing: {', '.join(missing)}")
    return Feedback(value="yes", rationale="all keywords found")


@scorer
def comprehensive_response_checker(outputs: str) -> list[Feedback]:
    return [
        Feedback(name="is_not_empty_check", value="yes" if outputs.strip() else "no"),
        Feedback(name="response_char_length", value=len(outputs)),
    ]


class ResponseQualityScorer(Scorer):
    name: str = "response_quality"
    min_length: int = 50
    required_sections: list[str] | None = None

    def __call__(self, outputs: str) -> Feedback:
        issues = []
        if len(outputs.split()) < self.min_length:
            issues.append(f"fewer than {self.min_length} words")
        for section in self.required_sections:
            if section not in outputs:
                issues.append(f"missing {section}")
        if issues:
            return Feedback(value=False, rationale="; ".join(issues))
        return Feedback(value=True, rationale="meets the bar")


@scorer
def resilient_scorer(outputs, trace=None) -> Feedback:
    response = outputs.get("response")
    if not response:
        return Feedback(value=None, error=AssessmentError("MISSING_RESPONSE", "no response"))
    return Feedback(value=True)


@scorer
def decorator_primitive(outputs: str) -> int:
    return 1


@scorer
def decorator_unnamed_feedback(outputs) -> Feedback:
    return Feedback(value=True, rationale="good")


@scorer
def decorator_feedback_named(outputs) -> Feedback:
    return Feedback(name="decorator_named_feedback", value=True)


@scorer
def decorator_named_feedbacks(outputs) -> list[Feedback]:
    return [
        Feedback(name="decorator_named_feedback_1", value=True),
        Feedback(name="decorator_named_feedback_2", value=0.9),
    ]


class ScorerPrimitive(Scorer):
    name: str = "scorer_primitive"

    def __call__(self, outputs: str) -> int:
        return 1


class ScorerFeedbackUnnamed(Scorer):
    name: str = "scorer_named_feedback"

    def __call__(self, outputs) -> Feedback:
        return Feedback(value=True)


class ScorerFeedbackNamed(Scorer):
    name: str = "scorer_feedback_named"

    def __call__(self, outputs) -> Feedback:
        return Feedback(name="scorer_named_feedback", value=False)


class ScorerNamedFeedbacks(Scorer):
    name: str = "scorer_named_feedbacks"

    def __call__(self, outputs) -> list[Feedback]:
        return [
            Feedback(name="scorer_named_feedback_1", value=True),
            Feedback(name="scorer_named_feedback_2", value=1),
        ]


CONVERSATIONS = [
    {
        "inputs": {"messages": [{"role": "user", "content": "How do I reset my password?"}]},
        "expectations": {
            "expected_response": ANSWERS["How do I reset my password?"],
            "expected_keywords": ["reset", "link"],
        },
    },
    {
        "inputs": {"messages": [{"role": "user", "content": "What is the return window?"}]},
        "expectations": {"expected_response": "30 days.", "expected_keywords": ["days", "refund"]},
    },
    {
        "inputs": {"messages": [{"role": "system", "content": "You are helpful."}]},
        "expectations": {"expected_response": "anything"},
    },
]


def test_code_examples_catalogue(store, capsys):
    catalogue = [
        placeholder_metric,
        llm_response_time_good,
        is_message_relevant,
        exact_match,
        keyword_presence_scorer,
        comprehensive_response_checker,
        ResponseQualityScorer(required_sections=["# Summary", "# Sources"], min_length=3),
        resilient_scorer,
        decorator_primitive,
        decorator_unnamed_feedback,
        decorator_feedback_named,
        decorator_named_feedbacks,
        ScorerPrimitive(),
        ScorerFeedbackUnnamed(),
        ScorerFeedbackNamed(),
        ScorerNamedFeedbacks(),
    ]
    result = evaluate(CONVERSATIONS, catalogue, predict_fn=sample_app)

    assert result.metrics == {
        "placeholder_metric/mean": 1.0,
        "llm_response_time_good/mean": 1.0,
        "is_message_relevant/mean": 1.0,
        "exact_match/mean": pytest.approx(1 / 3),
        "keyword_presence_scorer/mean": pytest.approx(2 / 3),
        "is_not_empty_check/mean": 1.0,
        "response_char_length/mean": pytest.approx(
            (len(ANSWERS["How do I reset my password?"]) + len(ANSWERS["What is the return window?"])
             + len("I can only help with support questions.")) / 3
        ),
        "response_quality/mean": pytest.approx(1 / 3),
        "decorator_primitive/mean": 1.0,
        "decorator_unnamed_feedback/mean": 1.0,
        "decorator_named_feedback/mean": 1.0,
        "decorator_named_feedback_1/mean": 1.0,
        "decorator_named_feedback_2/mean": pytest.approx(0.9),
        "scorer_primitive/mean": 1.0,
        # Unnamed feedback of scorer_named_feedback and the explicit name of another scorer share one metric.
        "scorer_named_feedback/mean": 0.5,
        "scorer_named_feedback_1/mean": 1.0,
        "scorer_named_feedback_2/mean": 1.0,
    }
    assert "resilient_scorer/mean" not in result.metrics
    assert result.counts["resilient_scorer"]["n_error"] == 3
    assert result.counts["is_message_relevant"]["n_error"] == 1
    assert "['reset', 'link']" in capsys.readouterr().out

    frame = result.result_df
    assert len(frame) == 3
    assert frame["is_message_relevant/value"].tolist()[:2] == ["yes", "yes"]
    assert frame["is_message_relevant/value"].tolist()[2] is None
    assert "no user message" in frame["is_message_relevant/error"].tolist()[2]
    assert all("AttributeError" in text for text in frame["resilient_scorer/error"])
    assert frame["keyword_presence_scorer/rationale"].tolist()[1] == "missing: refund"
    assert frame["response_quality/value"].tolist() == [True, False, False]
    for spans in frame["spans"]:
        assert [span["name"] for span in spans] == ["sample_app", "Completions"]


def test_predict_traces_tagged_and_searchable(store):
    result = evaluate(CONVERSATIONS[:2], [placeholder_metric], predict_fn=sample_app)

    generated = search_traces(run_id=result.run_id)
    assert sorted(generated["trace_id"]) == sorted(result.result_df["trace_id"])
    for metadata in generated["trace_metadata"]:
        assert metadata["mlflow.sourceRun"] == result.run_id
    for assessments in generated["assessments"]:
        names = {item["assessment_name"] for item in assessments}
        assert names == {"placeholder_metric", "expected_response", "expected_keywords"}


# --- traces with retriever, tool and agent spans (the custom scorers page) ---------------------


def record_agent_trace(question: str, tools: list[str], documents: list[str]) -> None:
    with start_span("support_agent", span_type=SpanType.AGENT) as root:
        root.set_inputs({"question": question})
        with start_span("retrieve", span_type=SpanType.RETRIEVER) as retriever:
            retriever.set_outputs([{"doc_uri": uri, "page_content": "..."} for uri in documents])
        for tool in tools:
            with start_span(tool, span_type=SpanType.TOOL) as span:
                span.set_outputs("done")
        with start_span("billing_agent", span_type=SpanType.AGENT):
            pass
        root.set_outputs('{"summary": "ok", "confidence": 0.9, "sources": []}' if tools else "not json")


@scorer
def retrieved_document_recall(trace, expectations):
    spans = trace.search_spans(span_type=SpanType.RETRIEVER)
    if not spans:
        return Feedback(value=0, rationale="no retriever span")
    found = {doc["doc_uri"] for doc in spans[0].outputs}
    expected = set(expectations["relevant_document_urls"])
    return Feedback(value=len(found & expected) / len(expected))


@scorer
def tool_call_trajectory(trace, expectations):
    names = [span.name for span in trace.search_spans(span_type=SpanType.TOOL)]
    return Feedback(value=1 if names == expectations["tool_call_trajectory"] else 0)


@scorer
def is_routing_correct(trace, expectations):
    agents = [span.name for span in trace.search_spans(span_type=SpanType.AGENT)]
    return Feedback(value=agents == expectations["expected_agents"])


@scorer
def is_valid_response(outputs):
    try:
        payload = json.loads(outputs)
    except json.JSONDecodeError as exc:
        return Feedback(error=exc)
    missing = [key for key in ("summary", "confidence", "sources") if key not in payload]
    if missing:
        return Feedback(error=AssessmentError("MISSING_REQUIRED_FIELDS", ", ".join(missing)))
    return Feedback(value=True)


@scorer
def num_tool_calls(trace):
    return len(trace.search_spans(name="lookup_order"))


@scorer
def faster_than_one_second(inputs, outputs, trace):
    return trace.info.execution_duration < 1000


def test_trace_structure_scorers_on_stored_traces(store):
    record_agent_trace("Where is my order?", ["lookup_order", "send_email"], ["doc://a", "doc://b"])
    record_agent_trace("Hello", [], [])
    # Both traces may start in the same millisecond, so the order comes from their requests.
    traces = sorted(search_traces(return_type="list"), key=lambda trace: "Hello" in trace.info.request_preview)
    data = pandas.DataFrame(
        {
            "trace": traces,
            "expectations": [
                {
                    "relevant_document_urls": ["doc://a", "doc://c"],
                    "tool_call_trajectory": ["lookup_order", "send_email"],
                    "expected_agents": ["support_agent", "billing_agent"],
                },
                {
                    "relevant_document_urls": ["doc://a"],
                    "tool_call_trajectory": [],
                    "expected_agents": ["support_agent"],
                },
            ],
        }
    )
    scorers = [
        retrieved_document_recall,
        tool_call_trajectory,
        is_routing_correct,
        is_valid_response,
        num_tool_calls,
        faster_than_one_second,
    ]
    result = evaluate(data, scorers)

    frame = result.result_df
    assert frame["retrieved_document_recall/value"].tolist() == [0.5, 0.0]
    assert frame["tool_call_trajectory/value"].tolist() == [1, 1]
    assert frame["is_routing_correct/value"].tolist() == [True, False]
    assert frame["is_valid_response/value"].tolist() == [True, None]
    assert frame["is_valid_response/error"].tolist()[1].startswith("Expecting value")
    assert frame["num_tool_calls/value"].tolist() == [1, 0]
    assert result.metrics["retrieved_document_recall/mean"] == 0.25
    assert result.metrics["is_valid_response/mean"] == 1.0
    assert result.metrics["faster_than_one_second/mean"] == 1.0
    assert result.counts["is_valid_response"]["n_error"] == 1


# --- rows: expectations and inputs in every shape ----------------------------------------------


def test_expectations_present_none_missing(store):
    seen = []

    @scorer
    def record(expectations):
        seen.append(expectations)
        return len(expectations)

    data = [
        {"inputs": {"q": 1}, "outputs": "a", "expectations": {"answer": "a"}},
        {"inputs": {"q": 2}, "outputs": "b", "expectations": None},
        {"inputs": {"q": 3}, "outputs": "c"},
    ]
    result = evaluate(data, [record], max_workers=1)

    assert seen == [{"answer": "a"}, {}, {}]
    assert result.result_df["record/value"].tolist() == [1, 0, 0]


def test_nan_cells_reach_scorers_as_none_and_empty(store):
    seen = []

    @scorer
    def record(outputs, expectations):
        seen.append((outputs, expectations))
        return 1

    frame = pandas.DataFrame(
        [
            {"inputs": {"q": 1}, "outputs": "a", "expectations": {"answer": "a"}},
            {"inputs": {"q": 2}},
        ]
    )
    assert math.isnan(frame["outputs"][1])
    evaluate(frame, [record], max_workers=1)

    assert seen == [("a", {"answer": "a"}), (None, {})]


def test_dict_inputs_and_json_text_accepted(store):
    seen = []

    @scorer
    def record(inputs):
        seen.append(inputs)
        return 1

    evaluate([{"inputs": {"q": 1}}, {"inputs": '{"q": 2}'}], [record], max_workers=1)
    assert seen == [{"q": 1}, {"q": 2}]


@pytest.mark.parametrize("inputs", ["plain question text", ["a", "list"], 42])
def test_static_inputs_not_dict_rejected(store, inputs):
    with pytest.raises(InvalidParameterError) as caught:
        evaluate([{"inputs": {"q": 1}}, {"inputs": inputs}], [placeholder_metric])
    message = str(caught.value)
    assert "row 1" in message
    assert type(inputs).__name__ in message
    assert table_count(store, "runs") == 0


def test_trace_inputs_list_and_string_reach_scorers(store):
    with start_span("list_app") as span:
        span.set_inputs(["first", "second"])
        span.set_outputs("out")
    with start_span("text_app") as span:
        span.set_inputs("just text")
        span.set_outputs("out")
    seen = {}

    @scorer
    def record(inputs, trace):
        seen[trace.data.root_span.name] = inputs
        return 1

    evaluate(search_traces(), [record])
    assert seen == {"list_app": ["first", "second"], "text_app": "just text"}


# --- predict_fn ---------------------------------------------------------------------------------


QUESTIONS = [{"inputs": {"question": "What is the return window?"}}, {"inputs": {"question": "Hi"}}]


def test_predict_fn_parameter_mismatch_fails_first(store):
    calls = []

    def predict(query):
        calls.append(query)
        return query

    with pytest.raises(InvalidParameterError) as caught:
        evaluate(QUESTIONS, [placeholder_metric], predict_fn=predict)
    message = str(caught.value)
    assert "'question'" in message
    assert "'query'" in message
    assert calls == []
    assert table_count(store, "runs") == 0
    assert table_count(store, "traces") == 0


def test_predict_fn_named_parameter_accepted(store):
    def predict(question):
        return question.upper()

    result = evaluate(QUESTIONS, [placeholder_metric], predict_fn=predict)
    assert result.result_df["response"].tolist() == ["WHAT IS THE RETURN WINDOW?", "HI"]


def test_predict_fn_var_keyword_accepted(store):
    def predict(**kwargs):
        return kwargs["question"][::-1]

    result = evaluate(QUESTIONS, [placeholder_metric], predict_fn=predict)
    assert result.result_df["response"].tolist()[1] == "iH"


def test_predict_fn_missing_required_parameter(store):
    def predict(question, context):
        return question

    with pytest.raises(InvalidParameterError) as caught:
        evaluate(QUESTIONS, [placeholder_metric], predict_fn=predict)
    assert "'context'" in str(caught.value)


@pytest.mark.parametrize(
    ("predict", "fragment"),
    [(lambda: 1, "takes no parameters"), (lambda *args: 1, "*args")],
)
def test_predict_fn_signature_rejected(store, predict, fragment):
    with pytest.raises(InvalidParameterError) as caught:
        evaluate(QUESTIONS, [placeholder_metric], predict_fn=predict)
    assert fragment in str(caught.value)


def test_untraced_predict_fn_gets_wrapped(store):
    def answer(question):
        return "42"

    result = evaluate(QUESTIONS[:1], [placeholder_metric], predict_fn=answer)
    [span] = result.result_df["spans"][0]
    assert span["name"] == "answer"
    assert json.loads(span["attributes"]["mlflow.spanInputs"]) == {"question": "What is the return window?"}
    assert table_count(store, "traces") == 1


def test_traced_predict_fn_not_wrapped_twice(store):
    result = evaluate(CONVERSATIONS[:1], [placeholder_metric], predict_fn=sample_app)
    names = [span["name"] for span in result.result_df["spans"][0]]
    assert names == ["sample_app", "Completions"]
    # The pre-flight call stored nothing: one trace for one row.
    assert table_count(store, "traces") == 1


def test_preflight_failure_writes_nothing(store):
    @trace
    def broken(question):
        raise RuntimeError("model endpoint unreachable")

    with pytest.raises(InvalidParameterError) as caught:
        evaluate(QUESTIONS, [placeholder_metric], predict_fn=broken)
    assert "model endpoint unreachable" in str(caught.value)
    assert table_count(store, "traces") == 0
    assert table_count(store, "runs") == 0


def test_row_whose_predict_fn_raises_is_scored(store):
    seen = []

    def flaky(question):
        if question == "Hi":
            raise ConnectionError("timed out")
        return "fine"

    @scorer
    def record(outputs):
        seen.append(outputs)
        return outputs is not None

    result = evaluate(QUESTIONS, [record], predict_fn=flaky, max_workers=1)
    assert seen == ["fine", None]
    frame = result.result_df
    assert frame["record/value"].tolist() == [True, False]
    assert frame["state"].tolist() == ["OK", "ERROR"]
    events = frame["spans"][1][0]["events"]
    assert events[0]["name"] == "exception"


def test_async_predict_fn(store):
    async def answer(question):
        await asyncio.sleep(0)
        return f"async {question}"

    result = evaluate(QUESTIONS, [placeholder_metric], predict_fn=answer)
    assert result.result_df["response"].tolist() == ["async What is the return window?", "async Hi"]


def test_context_reaches_row_threads(store):
    tenant = contextvars.ContextVar("tenant", default="none")
    tenant.set("acme")

    def answer(question):
        return tenant.get()

    result = evaluate(QUESTIONS * 5, [placeholder_metric], predict_fn=answer, max_workers=4)
    assert set(result.result_df["response"]) == {"acme"}


# --- stored traces as data -------------------------------------------------------------------------


def test_stored_traces_rescored_without_app(store):
    calls = []

    @trace
    def app(question):
        calls.append(question)
        return f"answer to {question}"

    first = evaluate(QUESTIONS, [placeholder_metric], predict_fn=app)
    assert len(calls) == 3  # the pre-flight call and two rows

    @scorer
    def response_length(outputs):
        return len(outputs)

    traces = search_traces(run_id=first.run_id)
    second = evaluate(data=traces, scorers=[response_length])

    assert len(calls) == 3
    assert second.run_id != first.run_id
    assert sorted(second.result_df["trace_id"]) == sorted(traces["trace_id"])
    assert second.metrics == {"response_length/mean": (len("answer to What is the return window?") + len("answer to Hi")) / 2}
    # result_df shows this run's assessments, not the first run's.
    assert "placeholder_metric/value" not in second.result_df.columns
    for trace_id in traces["trace_id"]:
        stored = store.get_trace(trace_id)
        [feedback] = stored.search_assessments("response_length")
        assert feedback.run_id == second.run_id
        assert feedback.span_id == stored.data.root_span.span_id
    assert sorted(search_traces(run_id=second.run_id)["trace_id"]) == sorted(traces["trace_id"])
    assert table_count(store, "traces") == 2


def test_trace_column_alone_accepted(store):
    with start_span("app") as span:
        span.set_inputs({"question": "q"})
        span.set_outputs("four words long here")

    @scorer
    def words(outputs):
        return len(outputs.split())

    frame = search_traces()[["trace"]]
    result = evaluate(frame, [words])
    assert result.metrics == {"words/mean": 4.0}


def test_list_of_traces_from_elsewhere_stored(store):
    with start_span("app") as span:
        span.set_inputs({"question": "q"})
        span.set_outputs("out")
    [original] = search_traces(return_type="list")

    # The same trace under another id, as if imported from another store.
    foreign_id = "tr-" + "ab" * 16
    data = original.to_dict()
    data["info"]["trace_id"] = foreign_id
    for span in data["data"]["spans"]:
        span["attributes"]["mlflow.traceRequestId"] = json.dumps(foreign_id)
    foreign = Trace.from_dict(data)

    @scorer
    def constant(outputs):
        return 1

    evaluate([original, foreign], [constant])
    assert store.get_trace(foreign_id).search_assessments("constant")[0].value == 1
    assert store.get_trace(original.info.trace_id).search_assessments("constant")[0].value == 1


def test_six_trace_case(store):
    values = {"t1": 0.9, "t2": float("nan"), "t3": 0.85, "t4": None, "t5": np.float64(0.7)}
    for key in ("t1", "t2", "t3", "t4", "t5", "t6"):
        with start_span("app") as span:
            span.set_inputs({"key": key})
            span.set_outputs(key)

    @scorer
    def quality(outputs):
        if outputs not in values:
            raise LookupError(f"no score for {outputs}")
        return values[outputs]

    result = evaluate(search_traces(order_by=["timestamp_ms ASC"]), [quality])

    assert result.metrics["quality/mean"] == pytest.approx(0.8167, abs=1e-4)
    assert result.counts["quality"] == {"n_scored": 3, "n_nan": 1, "n_none": 1, "n_error": 1, "n_other": 0}
    cells = dict(zip(result.result_df["response"], result.result_df["quality/value"]))
    assert cells["t1"] == 0.9
    assert math.isnan(cells["t2"])
    assert cells["t4"] is None
    assert type(cells["t5"]) is float
    assert cells["t6"] is None
    errors = dict(zip(result.result_df["response"], result.result_df["quality/error"]))
    assert errors["t6"] == "LookupError: no score for t6"
    assert errors["t1"] is None


def test_tags_written_to_traces(store):
    data = [dict(STATIC_ROWS[0], tags={"team": "support", "mlflow.user": "ignored"})]
    result = evaluate(data, [exact_match])
    stored = store.get_trace(result.result_df["trace_id"][0])
    assert stored.info.tags["team"] == "support"
    assert "mlflow.user" not in stored.info.tags


# --- validation before anything runs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "scorers", "fragment"),
    [
        (STATIC_ROWS, exact_match, "must be a list"),
        (STATIC_ROWS, [ResponseQualityScorer], "ResponseQualityScorer()"),
        (STATIC_ROWS, [lambda outputs: 1], "@scorer"),
        ([], [exact_match], "empty"),
        ("rows.csv", [exact_match], "str"),
        ([{"inputs": {"q": 1}}, "row"], [exact_match], "item 1"),
        ([{"outputs": "x"}], [exact_match], "neither an 'inputs' nor a 'trace'"),
        ([{"inputs": {"q": 1}, "expectations": "the answer"}], [exact_match], "expectations in row 0"),
        ([{"inputs": {"q": 1}, "tags": ["x"]}], [exact_match], "tags in row 0"),
        ([{"inputs": {"q": 1}, "tags": {1: "x"}}], [exact_match], "tag keys must be str"),
        ([{"inputs": {"q": 1}}], [scorer(aggregations=["p99"])(lambda outputs: 1)], "'p99'"),
    ],
)
def test_invalid_arguments_fail_before_writing(store, data, scorers, fragment):
    with pytest.raises(InvalidParameterError) as caught:
        evaluate(data, scorers)
    assert fragment in str(caught.value)
    assert table_count(store, "runs") == 0
    assert table_count(store, "traces") == 0
    assert table_count(store, "assessments") == 0


def test_invalid_max_workers(store):
    with pytest.raises(InvalidParameterError):
        evaluate(STATIC_ROWS, [exact_match], max_workers=0)


def test_progress_silent_without_terminal(store, capsys, monkeypatch):
    monkeypatch.delenv("TUI_EVAL_PROGRESS")
    evaluate(STATIC_ROWS, [exact_match])
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_result_frame_leaves_out_workbench_scores():
    from pathlib import Path

    from tui_eval.entities import Feedback, Trace
    from tui_eval.genai.evaluation import build_result_frame

    trace = Trace.from_json((Path(__file__).parent / "fixtures" / "mlflow-3.17" / "tr-dd2a7c85ea0b601e94fddcccf3a99795.json").read_text(encoding="utf-8"))
    trace.info.assessments = [
        Feedback(name="from_workbench", value=1, metadata={"tui_eval.generation": "3"}),
        Feedback(name="from_this_run", value=2, metadata={"mlflow.assessment.sourceRunId": "run-1"}),
        Feedback(name="from_other_run", value=3, metadata={"mlflow.assessment.sourceRunId": "run-2"}),
        Feedback(name="unattributed", value=4),
    ]
    frame = build_result_frame("run-1", [trace])
    value_columns = [column for column in frame.columns if column.endswith("/value")]
    assert value_columns == ["from_this_run/value", "unattributed/value"]
