"""Unit tests for the trace data model and its MLflow dict and JSON forms."""

import json
import re
from pathlib import Path

import pytest

from tui_eval.entities import (
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
    LiveSpan,
    Span,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceInfo,
    TraceState,
)
from tui_eval.entities.assessment import Assessment
from tui_eval.errors import InvalidParameterError, TraceFormatError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mlflow-3.17"
TRACE_ID = "tr-3f2a9c0d5e6b47a18c2d4e5f60718293"


def fixture_files():
    files = sorted(FIXTURES.glob("tr-*.json"))
    assert len(files) == 4, f"expected the four MLflow 3.17 fixtures in {FIXTURES}"
    return files


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.stem)
def test_mlflow_fixture_round_trips_exactly(path):
    original = json.loads(path.read_text(encoding="utf-8"))
    trace = Trace.from_json(path.read_text(encoding="utf-8"))
    assert trace.to_dict() == original
    assert json.loads(trace.to_json(pretty=True)) == original


def test_fixture_dataframe_row_matches_mlflow():
    rows = [json.loads(line) for line in (FIXTURES / "search_traces_frame.jsonl").read_text().splitlines()]
    assert rows
    for expected in rows:
        trace = Trace.from_json((FIXTURES / f"{expected['trace_id']}.json").read_text(encoding="utf-8"))
        row = trace.to_pandas_dataframe_row()
        assert list(row) == Trace.pandas_dataframe_columns()
        for column in Trace.pandas_dataframe_columns():
            if column == "trace":
                assert json.loads(row[column]) == json.loads(expected[column])
            else:
                assert row[column] == expected[column], column


def test_fixture_spans_keep_types_errors_and_events():
    trace = Trace.from_json((FIXTURES / "tr-18234898bb00fd892757c7ba748c9fc8.json").read_text(encoding="utf-8"))
    types = [span.span_type for span in trace.data.spans]
    assert types == ["UNKNOWN", "RETRIEVER", "TOOL", "PARSER", "CHAT_MODEL"]
    tool = trace.search_spans(span_type=SpanType.TOOL)[0]
    assert tool.status.status_code == SpanStatusCode.ERROR
    assert tool.events[0].name == "exception"
    assert tool.events[0].attributes["exception.type"] == "KeyError"
    chat = trace.search_spans(span_type=SpanType.CHAT_MODEL)[0]
    assert chat.outputs["usage"]["total_tokens"] == 21
    assert chat.parent_id == trace.search_spans(name="compose")[0].span_id
    root = trace.data.root_span
    assert root.inputs["messages"][0]["content"].endswith("[bold]x[/bold]")
    assert trace.info.execution_duration == 96
    assert trace.info.request_time == 1796414697363


def test_search_spans_filters_and_regex():
    trace = Trace.from_json((FIXTURES / "tr-18234898bb00fd892757c7ba748c9fc8.json").read_text(encoding="utf-8"))
    assert [span.name for span in trace.search_spans(name=re.compile("^s"))] == ["support_agent", "search_docs"]
    assert [span.name for span in trace.search_spans(name=re.compile("OOK", re.I))] == ["lookup_order"]
    assert trace.search_spans(name="search") == []
    assert len(trace.search_spans()) == 5
    chat_id = trace.search_spans(span_type="CHAT_MODEL")[0].span_id
    assert trace.search_spans(span_id=chat_id, span_type="CHAT_MODEL")[0].name == "fake_llm"
    assert trace.search_spans(span_id=chat_id, span_type="TOOL") == []
    with pytest.raises(InvalidParameterError, match="'name'"):
        trace.search_spans(name=3)
    with pytest.raises(InvalidParameterError, match="'span_type'"):
        trace.search_spans(span_type=3)


def test_search_assessments_by_type_name_and_validity():
    trace = Trace.from_json((FIXTURES / "tr-378bb57e09b1107c8e7150728b047cf6.json").read_text(encoding="utf-8"))
    expectations = trace.search_assessments(type="expectation")
    assert {a.name for a in expectations} == {"expected_response", "expected_keywords"}
    assert trace.search_assessments("expected_keywords")[0].value == ["30 days"]
    crashes = trace.search_assessments("crashes")[0]
    assert crashes.error.error_code == "SCORER_ERROR"
    assert crashes.value is None
    crashes.valid = False
    assert trace.search_assessments("crashes") == []
    assert trace.search_assessments("crashes", all=True) == [crashes]


# --- the six trace JSON variants an importer must read -----------------------------------


def _v36_span(**overrides):
    span = {
        "trace_id": "PyqcDV5rR6GMLU5fYHGCkw==",
        "span_id": "Gis8TV5vcIE=",
        "parent_span_id": None,
        "name": "answer_question",
        "start_time_unix_nano": 1748779200250000000,
        "end_time_unix_nano": 1748779201062000000,
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.traceRequestId": json.dumps(TRACE_ID),
            "mlflow.spanType": '"CHAIN"',
            "mlflow.spanInputs": '{"question": "Is the X100 waterproof?"}',
            "mlflow.spanOutputs": '"Yes."',
        },
    }
    span.update(overrides)
    return span


def _v3_info(**overrides):
    info = {
        "trace_id": TRACE_ID,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "7"}},
        "request_time": "2025-06-01T12:00:00.250Z",
        "execution_duration_ms": 812,
        "state": "OK",
        "trace_metadata": {"mlflow.trace_schema.version": "3"},
        "tags": {"mlflow.traceName": "answer_question"},
    }
    info.update(overrides)
    return info


def test_variant_mlflow_36_base64_ids():
    trace = Trace.from_dict({"info": _v3_info(), "data": {"spans": [_v36_span()]}})
    root = trace.data.root_span
    assert root.span_id == "1a2b3c4d5e6f7081"
    assert root.trace_id == TRACE_ID
    assert root.status.status_code == SpanStatusCode.OK
    assert trace.info.request_time == 1748779200250
    assert trace.to_dict()["data"]["spans"][0]["trace_id"] == "PyqcDV5rR6GMLU5fYHGCkw=="


def test_variant_mlflow_350_hex_ids_and_short_codes():
    child = _v36_span(
        trace_id=TRACE_ID,
        span_id="9c8d7e6f5a4b3c2d",
        parent_span_id="1a2b3c4d5e6f7081",
        name="Completions",
        status={"code": "ERROR", "message": "boom"},
    )
    root = _v36_span(trace_id=TRACE_ID, span_id="1a2b3c4d5e6f7081", status={"code": "OK", "message": ""})
    trace = Trace.from_dict({"info": _v3_info(), "data": {"spans": [root, child]}})
    assert [s.span_id for s in trace.data.spans] == ["1a2b3c4d5e6f7081", "9c8d7e6f5a4b3c2d"]
    assert trace.data.spans[1].parent_id == "1a2b3c4d5e6f7081"
    assert trace.data.spans[1].status == SpanStatus(SpanStatusCode.ERROR, "boom")
    exported = trace.to_dict()["data"]["spans"][1]
    assert exported["span_id"] == "nI1+b1pLPC0="
    assert exported["status"]["code"] == "STATUS_CODE_ERROR"


def test_variant_v2_request_id_and_span_context():
    v2 = {
        "info": {
            "request_id": "3f2a9c0d5e6b47a18c2d4e5f60718293",
            "experiment_id": "3",
            "timestamp_ms": 1700000000000,
            "execution_time_ms": 42,
            "status": "OK",
            "request_metadata": {"mlflow.traceInputs": "{}"},
            "tags": [{"key": "env", "value": "dev"}],
        },
        "data": {
            "request": "{}",
            "response": '"hi"',
            "spans": [
                {
                    "name": "predict",
                    "context": {"span_id": "0x1a2b3c4d5e6f7081", "trace_id": "0x3f2a9c0d5e6b47a18c2d4e5f60718293"},
                    "parent_id": None,
                    "start_time": 1700000000000000000,
                    "end_time": 1700000000042000000,
                    "status_code": "OK",
                    "status_message": "",
                    "attributes": {"mlflow.spanType": '"CHAIN"', "mlflow.spanOutputs": '"hi"'},
                    "events": [{"name": "log", "timestamp": 1700000000001000000, "attributes": {"k": "v"}}],
                }
            ],
        },
    }
    trace = Trace.from_dict(v2)
    assert trace.info.trace_id == "3f2a9c0d5e6b47a18c2d4e5f60718293"
    assert trace.info.experiment_id == "3"
    assert trace.info.execution_duration == 42
    assert trace.info.tags == {"env": "dev"}
    span = trace.data.spans[0]
    assert span.span_id == "1a2b3c4d5e6f7081"
    assert span.outputs == "hi"
    assert span.events[0].timestamp == 1700000000001000000
    assert trace.data.response == '"hi"'


def test_variant_rest_form_duration_string_and_string_times():
    span = _v36_span(
        start_time_unix_nano="1748779200250000000",
        end_time_unix_nano="1748779201062000000",
        parent_span_id="",
        trace_state="",
    )
    info = _v3_info(execution_duration="32.583s")
    info.pop("execution_duration_ms")
    trace = Trace.from_dict({"info": info, "data": {"spans": [span]}})
    assert trace.info.execution_duration == 32583
    assert trace.data.spans[0].parent_id is None
    assert trace.data.spans[0].start_time_ns == 1748779200250000000
    assert trace.data.spans[0].duration_ns == 812000000
    assert trace.to_dict()["data"]["spans"][0]["trace_state"] == ""


def test_variant_trace_without_spans():
    trace = Trace.from_dict({"info": _v3_info(), "data": {"spans": []}})
    assert trace.data.spans == []
    assert trace.data.root_span is None
    row = trace.to_pandas_dataframe_row()
    assert row["request"] is None
    assert row["spans"] == []
    assert Trace.from_dict({"info": _v3_info()}).data.spans == []


def test_variant_error_state_with_exception_event():
    span = _v36_span(
        status={"code": "STATUS_CODE_ERROR", "message": "RuntimeError: boom"},
        events=[
            {
                "name": "exception",
                "time_unix_nano": 1748779200300000000,
                "attributes": {"exception.type": "RuntimeError", "exception.message": "boom"},
            }
        ],
    )
    trace = Trace.from_dict({"info": _v3_info(state="ERROR"), "data": {"spans": [span]}})
    assert trace.info.state == TraceState.ERROR
    assert trace.info.status == "ERROR"
    assert trace.data.spans[0].events[0].attributes["exception.message"] == "boom"


def test_invalid_documents_raise_trace_format_error():
    with pytest.raises(TraceFormatError, match="not valid JSON"):
        Trace.from_json("{not json")
    with pytest.raises(TraceFormatError, match="'info' and 'data'"):
        Trace.from_dict({"spans": []})
    with pytest.raises(TraceFormatError, match="no trace_id"):
        Trace.from_dict({"info": {"state": "OK"}, "data": {}})
    with pytest.raises(TraceFormatError, match="status code"):
        Trace.from_dict({"info": _v3_info(), "data": {"spans": [_v36_span(status={"code": "MAYBE"})]}})
    with pytest.raises(TraceFormatError, match="invalid id"):
        Trace.from_dict({"info": _v3_info(), "data": {"spans": [_v36_span(span_id="zz")]}})


def test_span_without_request_id_attribute_needs_a_trace_id():
    span = _v36_span()
    del span["attributes"]["mlflow.traceRequestId"]
    assert Span.from_dict(span).trace_id == TRACE_ID
    del span["trace_id"]
    with pytest.raises(TraceFormatError, match="no 'mlflow.traceRequestId'"):
        Span.from_dict(span)
    assert Span.from_dict(span, trace_id="tr-x").trace_id == "tr-x"
    span["trace_id"] = "not-base64!"
    with pytest.raises(TraceFormatError, match="invalid id"):
        Span.from_dict(span, trace_id="tr-x")


def test_attribute_decoding_rules():
    span = Span.from_dict(
        _v36_span(attributes={"mlflow.traceRequestId": json.dumps(TRACE_ID), "a": "8", "b": "", "c": "not json", "d": 5})
    )
    assert span.attributes["a"] == 8
    assert span.attributes["b"] is None
    assert span.attributes["c"] == "not json"
    assert span.get_attribute("d") == 5
    assert span.get_attribute("missing") is None


# --- info ----------------------------------------------------------------------------------


def test_info_aliases_and_token_usage():
    info = TraceInfo.from_dict(
        _v3_info(trace_metadata={"mlflow.trace.tokenUsage": '{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}'})
    )
    assert info.request_id == info.trace_id == TRACE_ID
    assert info.timestamp_ms == info.request_time == 1748779200250
    assert info.execution_time_ms == 812
    assert info.experiment_id == "7"
    assert info.request_metadata is info.trace_metadata
    assert info.token_usage == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert TraceInfo(trace_id="tr-1").token_usage is None


def test_info_request_time_formats_whole_seconds_without_fraction():
    info = TraceInfo(trace_id="tr-1", request_time=1748779200000)
    assert info.to_dict()["request_time"] == "2025-06-01T12:00:00Z"
    assert TraceInfo.from_dict(info.to_dict()).request_time == 1748779200000
    offset = TraceInfo.from_dict(_v3_info(request_time="2025-06-01T14:00:00.5+02:00"))
    assert offset.request_time == 1748779200500


# --- assessments ------------------------------------------------------------------------------


def test_feedback_defaults_and_dictionary_form():
    feedback = Feedback(value=True, rationale="ok", trace_id="tr-1", create_time_ms=1748779260000)
    assert feedback.name == "feedback"
    assert feedback.source == AssessmentSource("CODE", "default")
    assert feedback.to_dictionary() == {
        "assessment_name": "feedback",
        "trace_id": "tr-1",
        "source": {"source_type": "CODE", "source_id": "default"},
        "create_time": "2025-06-01T12:01:00Z",
        "last_update_time": "2025-06-01T12:01:00Z",
        "feedback": {"value": True},
        "rationale": "ok",
        "valid": True,
    }
    assert Assessment.from_dictionary(feedback.to_dictionary()) == feedback


def test_feedback_needs_value_or_error():
    with pytest.raises(InvalidParameterError, match="value or an error"):
        Feedback(name="x")
    assert Feedback(value=0).value == 0
    assert Feedback(value=False).value is False


def test_feedback_error_forms():
    try:
        raise KeyError("missing")
    except KeyError as exc:
        from_exception = Feedback(error=exc)
    assert from_exception.error_code == "KeyError"
    assert from_exception.error_message == "'missing'"
    assert "KeyError" in from_exception.error.stack_trace
    from_string = Feedback(error="no response")
    assert (from_string.error_code, from_string.error_message) == ("ASSESSMENT_ERROR", "no response")
    explicit = Feedback(error=AssessmentError("MISSING_RESPONSE", "empty"))
    assert explicit.error.to_dictionary() == {"error_code": "MISSING_RESPONSE", "error_message": "empty"}
    with pytest.raises(InvalidParameterError):
        Feedback(error=42)


def test_expectation_serialises_non_scalars_as_json():
    scalar = Expectation("expected_response", "Yes")
    assert scalar.to_dictionary()["expectation"] == {"value": "Yes"}
    assert scalar.source.source_type == "HUMAN"
    listed = Expectation("expected_keywords", ["30 days", "refund"])
    body = listed.to_dictionary()["expectation"]
    assert body["serialized_value"]["serialization_format"] == "JSON_FORMAT"
    assert Assessment.from_dictionary(listed.to_dictionary()).value == ["30 days", "refund"]
    with pytest.raises(InvalidParameterError):
        Expectation("x", None)


def test_source_types_are_validated():
    assert AssessmentSource("llm_judge").source_type == "LLM_JUDGE"
    with pytest.warns(DeprecationWarning):
        assert AssessmentSource("AI_JUDGE").source_type == "LLM_JUDGE"
    with pytest.raises(InvalidParameterError, match="ROBOT"):
        AssessmentSource("ROBOT")


def test_run_id_comes_from_metadata():
    feedback = Feedback(value=1, metadata={"mlflow.assessment.sourceRunId": "r1"})
    assert feedback.run_id == "r1"
    feedback.run_id = "r2"
    assert feedback.metadata == {"mlflow.assessment.sourceRunId": "r2"}


# --- live spans -------------------------------------------------------------------------------


def test_live_span_setters_encode_as_json_text():
    ended = []
    span = LiveSpan(trace_id=TRACE_ID, name="step", span_type=SpanType.TOOL, on_end=ended.append)
    span.set_inputs({"q": "é [bold]"})
    span.set_attribute("count", 8)
    span.set_attributes({"model": "gpt", "temperature": 0})
    assert span.raw_attributes["mlflow.spanType"] == '"TOOL"'
    assert span.raw_attributes["count"] == "8"
    assert span.inputs == {"q": "é [bold]"}
    assert span.attributes["temperature"] == 0
    span.end(outputs="done")
    span.end(outputs="again")
    assert ended == [span]
    assert span.outputs == "done"
    assert span.status.status_code == SpanStatusCode.OK
    assert span.end_time_ns >= span.start_time_ns


def test_live_span_record_exception_keeps_error_status_on_end():
    span = LiveSpan(trace_id=TRACE_ID, name="step")
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        span.record_exception(exc)
    span.end()
    assert span.status == SpanStatus(SpanStatusCode.ERROR, "ValueError: bad value")
    assert span.events[0].name == "exception"
    assert span.events[0].attributes["exception.type"] == "ValueError"
    assert "bad value" in span.events[0].attributes["exception.stacktrace"]


def test_live_span_round_trips_through_dict():
    span = LiveSpan(trace_id=TRACE_ID, name="root")
    span.add_event(SpanEvent("log", 5, {"k": "v"}))
    span.end(outputs=[1, 2])
    copy = Span.from_dict(span.to_dict())
    assert copy == span.to_immutable_span()
    assert copy.to_dict()["links"] == []
    assert copy.outputs == [1, 2]


def test_base64_ids_starting_with_0x_are_not_read_as_hex():
    from tui_eval.entities.ids import hex_to_base64, normalize_span_id

    span_hex = "d31c4d5e6f708192"
    encoded = hex_to_base64(span_hex)
    assert encoded.startswith("0x")
    assert normalize_span_id(encoded) == span_hex
    trace_hex = "d31c" + "ab" * 14
    assert hex_to_base64(trace_hex).startswith("0x")
    assert normalize_span_id(hex_to_base64(trace_hex), nbytes=16) == trace_hex
    assert normalize_span_id("0x1a2b3c4d5e6f7081") == "1a2b3c4d5e6f7081"
    assert normalize_span_id("0x7081") == "0000000000007081"


def test_record_exception_survives_a_broken_str():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    span = LiveSpan(trace_id=TRACE_ID, name="step")
    span.record_exception(Unprintable())
    assert span.status.description == "Unprintable: <Unprintable whose str() failed>"
