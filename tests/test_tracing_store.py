"""Finished traces: summary fields, assessments, the store round trip and store selection."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os

import pandas as pd
import pytest

import tui_eval.tracing as tracing
from tui_eval.entities import AssessmentSource, Expectation, Feedback, SpanType, TraceState
from tui_eval.errors import InvalidParameterError
from tui_eval.store import Store
from tui_eval.tracing import provider, recorder
from tui_eval.tracing.summary import METADATA_MAX_CHARS, PREVIEW_MAX_CHARS


@pytest.fixture(autouse=True)
def store_path(tmp_path, monkeypatch):
    monkeypatch.delenv("TUI_EVAL_STORE", raising=False)
    path = tmp_path / "traces.db"
    provider.reset()
    recorder.clear()
    tracing.set_tracking_uri(path)
    yield path
    provider.reset()
    recorder.clear()


def read_back(trace_id, path):
    with Store(path) as store:
        trace = store.get_trace(trace_id)
    assert trace is not None, f"trace {trace_id} is not in {path}"
    return trace


def run_root(fn, *args, **kwargs):
    traced = tracing.trace(fn)
    try:
        traced(*args, **kwargs)
    except Exception:  # noqa: BLE001 - some cases trace a failing root on purpose
        pass
    return tracing.get_last_active_trace_id()


# --- summary fields -----------------------------------------------------------------------


def test_finished_trace_summary_fields(store_path):
    @tracing.trace(span_type=SpanType.CHAIN)
    def support_agent(messages, order_id=None):
        return "Here is what I found"

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is order 1234?"}]
    support_agent(messages, order_id="1234")
    trace = read_back(tracing.get_last_active_trace_id(), store_path)
    info = trace.info
    root = trace.data.spans[0]

    assert info.state == TraceState.OK
    assert info.request_time == root.start_time_ns // 1_000_000
    assert info.execution_duration == (root.end_time_ns - root.start_time_ns) // 1_000_000
    assert info.tags["mlflow.traceName"] == "support_agent"
    assert info.trace_metadata["mlflow.trace_schema.version"] == "3"
    assert json.loads(info.trace_metadata["mlflow.traceInputs"]) == {"messages": messages, "order_id": "1234"}
    assert info.trace_metadata["mlflow.traceOutputs"] == '"Here is what I found"'
    assert info.request_preview == "Where is order 1234?"
    # A plain string output previews as its JSON text, quotes included, as MLflow 3 writes it.
    assert info.response_preview == '"Here is what I found"'
    assert "mlflow.sourceRun" not in info.trace_metadata
    assert "mlflow.trace.tokenUsage" not in info.trace_metadata
    assert info.experiment_id == "0"


def test_chat_completion_output_previews_assistant_text(store_path):
    def chat(messages):
        return {
            "id": "c-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes, IP68."}}],
        }

    trace_id = run_root(chat, [{"role": "user", "content": [{"type": "text", "text": "Waterproof?"}]}])
    info = read_back(trace_id, store_path).info
    assert info.request_preview == "Waterproof?"
    assert info.response_preview == "Yes, IP68."


def test_messages_without_user_role_preview_last_message(store_path):
    trace_id = run_root(lambda messages: None, [{"role": "system", "content": "sys text"}])
    assert read_back(trace_id, store_path).info.request_preview == "sys text"


@pytest.mark.parametrize(
    ("inputs", "expected_preview"),
    [
        ("just text", '{"question": "just text"}'),
        ([1, 2], '{"question": [1, 2]}'),
        (None, '{"question": null}'),
    ],
)
def test_non_chat_inputs_preview_as_json(store_path, inputs, expected_preview):
    trace_id = run_root(lambda question: question, inputs)
    assert read_back(trace_id, store_path).info.request_preview == expected_preview


def test_root_inputs_list_string_or_none(store_path):
    for name, inputs in (("list", [1, "a"]), ("string", "plain"), ("none", None)):
        with tracing.start_span(name) as span:
            if inputs is not None:
                span.set_inputs(inputs)
        trace = read_back(tracing.get_last_active_trace_id(), store_path)
        assert trace.data.spans[0].inputs == inputs
        if inputs is None:
            assert trace.info.request_preview is None
            assert trace.info.trace_metadata["mlflow.traceInputs"] == ""
        else:
            assert trace.info.request_preview == json.dumps(inputs)


def test_long_payloads_are_truncated(store_path):
    text = "x" * 5000
    trace_id = run_root(lambda messages: text, [{"role": "user", "content": text}])
    info = read_back(trace_id, store_path).info
    assert len(info.request_preview) == PREVIEW_MAX_CHARS
    assert info.request_preview.endswith("...")
    assert len(info.response_preview) == PREVIEW_MAX_CHARS
    assert len(info.trace_metadata["mlflow.traceInputs"]) == METADATA_MAX_CHARS
    assert info.trace_metadata["mlflow.traceInputs"].endswith("...")
    assert len(info.trace_metadata["mlflow.traceOutputs"]) == METADATA_MAX_CHARS


def test_failed_root_has_error_state_and_no_response(store_path):
    def broken_app(question):
        raise RuntimeError("upstream model timed out")

    trace_id = run_root(broken_app, "will this fail?")
    trace = read_back(trace_id, store_path)
    assert trace.info.state == TraceState.ERROR
    assert trace.info.response_preview is None
    assert trace.info.trace_metadata["mlflow.traceOutputs"] == ""
    assert trace.info.request_preview == '{"question": "will this fail?"}'
    assert trace.data.spans[0].events[0].attributes["exception.message"] == "upstream model timed out"


def test_token_usage_counts_outermost_reporting_span_per_branch(store_path):
    def usage(prompt, completion):
        return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}

    with tracing.start_span("root"):
        with tracing.start_span("wrapper") as wrapper:
            wrapper.set_attribute("mlflow.chat.tokenUsage", usage(10, 5))
            with tracing.start_span("llm") as inner:
                inner.set_attribute("mlflow.chat.tokenUsage", usage(10, 5))
        with tracing.start_span("branch"):
            with tracing.start_span("llm2") as other:
                other.set_attribute("mlflow.chat.tokenUsage", usage(3, 4))
    info = read_back(tracing.get_last_active_trace_id(), store_path).info
    assert json.loads(info.trace_metadata["mlflow.trace.tokenUsage"]) == {
        "input_tokens": 13,
        "output_tokens": 9,
        "total_tokens": 22,
    }
    assert info.token_usage["total_tokens"] == 22


def test_active_run_sets_source_run(store_path):
    with provider.set_active_run("0123456789abcdef0123456789abcdef"):
        trace_id = run_root(lambda: 1)
    assert provider.get_active_run_id() is None
    metadata = read_back(trace_id, store_path).info.trace_metadata
    assert metadata["mlflow.sourceRun"] == "0123456789abcdef0123456789abcdef"


def test_outputs_without_json_form_are_stored_as_text(store_path):
    class Reply:
        pass

    trace_id = run_root(lambda: Reply())
    outputs = read_back(trace_id, store_path).data.spans[0].outputs
    assert outputs.startswith("<")
    assert outputs.endswith("Reply object>")


def test_markup_control_characters_and_surrogates_are_stored(store_path):
    text = "[bold]x[/bold] [/ \x1b[31m \x00 日本語 ✓ 😀"

    def app(question):
        span = tracing.get_current_active_span()
        span.set_attribute("bad\ud800key", "v")
        span.add_event(tracing.fluent.SpanEvent("note\udfff", attributes={"text": "a\ud800", "obj": {"k": 1}}))
        tracing.update_current_trace(tags={"tag": "t\ud800"})
        return question + "\ud83d"

    trace_id = run_root(app, text)
    trace = read_back(trace_id, store_path)
    root = trace.data.spans[0]
    assert root.inputs == {"question": text}
    assert root.outputs == text + "\ufffd"
    assert root.get_attribute("bad\ufffdkey") == "v"
    assert root.events[0].name == "note\ufffd"
    assert root.events[0].attributes == {"text": "a\ufffd", "obj": '{"k": 1}'}
    assert trace.info.tags["tag"] == "t\ufffd"


# --- update_current_trace -----------------------------------------------------------------


def test_update_current_trace_sets_fields(store_path):
    def app():
        tracing.update_current_trace(
            tags={"env": "dev", "attempt": 2},
            metadata={"mlflow.trace.session": "s-1"},
            client_request_id="req-7",
            request_preview="custom request",
            response_preview="custom response",
            state="ERROR",
        )
        return "ok"

    info = read_back(run_root(app), store_path).info
    assert info.tags["env"] == "dev"
    assert info.tags["attempt"] == "2"
    assert info.tags["mlflow.traceName"] == "app"
    assert info.trace_metadata["mlflow.trace.session"] == "s-1"
    assert info.client_request_id == "req-7"
    assert info.request_preview == "custom request"
    assert info.response_preview == "custom response"
    assert info.state == TraceState.ERROR


def test_update_current_trace_rejects_other_states():
    with tracing.start_span("root"):
        with pytest.raises(InvalidParameterError, match="'OK' or 'ERROR'"):
            tracing.update_current_trace(state="IN_PROGRESS")
        with pytest.raises(InvalidParameterError):
            tracing.update_current_trace(state="bogus")


def test_update_current_trace_outside_trace_warns(caplog):
    with caplog.at_level(logging.WARNING):
        tracing.update_current_trace(tags={"a": "b"})
    assert "outside a trace" in caplog.text


# --- assessments --------------------------------------------------------------------------


def test_feedback_and_expectation_logged_during_trace(store_path):
    def app():
        trace_id = tracing.get_active_trace_id()
        tracing.log_expectation(trace_id=trace_id, name="expected", value={"answer": "IP68"})
        tracing.log_feedback(trace_id=trace_id, name="inline", value=0.5, rationale="half")
        return "done"

    trace = read_back(run_root(app), store_path)
    by_name = {assessment.name: assessment for assessment in trace.info.assessments}
    assert isinstance(by_name["expected"], Expectation)
    assert by_name["expected"].value == {"answer": "IP68"}
    assert by_name["inline"].value == 0.5
    assert by_name["inline"].rationale == "half"
    assert all(item.assessment_id.startswith("a-") for item in trace.info.assessments)


def test_feedback_logged_after_trace(store_path):
    trace_id = run_root(lambda: "answer")
    logged = tracing.log_feedback(
        trace_id=trace_id,
        name="relevance",
        value="yes",
        source=AssessmentSource("HUMAN", "alice"),
        metadata={"note": "checked"},
    )
    assert logged.assessment_id.startswith("a-")
    errored = tracing.log_feedback(trace_id=trace_id, name="judge", error=ValueError("no model"))
    expectation = tracing.log_assessment(trace_id, Expectation(name="expected_response", value="answer"))
    assert expectation.trace_id == trace_id

    trace = tracing.get_trace(trace_id)
    found = {item.name: item for item in trace.info.assessments}
    assert found["relevance"].value == "yes"
    assert found["relevance"].source.source_id == "alice"
    assert found["relevance"].metadata == {"note": "checked"}
    assert found["judge"].error.error_code == "ValueError"
    assert found["expected_response"].value == "answer"
    assert errored.assessment_id in {item.assessment_id for item in trace.search_assessments(name="judge")}


def test_log_feedback_needs_value_or_error():
    with pytest.raises(InvalidParameterError):
        tracing.log_feedback(trace_id="tr-" + "0" * 32, name="empty")


def test_log_assessment_rejects_non_assessment():
    with pytest.raises(InvalidParameterError, match="Feedback or Expectation"):
        tracing.log_assessment("tr-" + "0" * 32, {"name": "x"})


def test_log_feedback_on_unknown_trace_raises():
    with pytest.raises(InvalidParameterError, match="not found"):
        tracing.log_feedback(trace_id="tr-" + "1" * 32, value=1)


# --- the store round trip -----------------------------------------------------------------


def test_stored_trace_equals_trace_built_in_memory(store_path):
    @tracing.trace
    def child(i):
        return {"i": i}

    @tracing.trace
    def root():
        return [child(i) for i in range(3)]

    root()
    trace_id = tracing.get_last_active_trace_id()
    in_memory = recorder.get_recent_trace(trace_id)
    stored = read_back(trace_id, store_path)
    assert stored.to_dict() == in_memory.to_dict()
    assert len(stored.data.spans) == 4


def test_store_shows_trace_in_progress(store_path):
    seen = {}

    def app():
        with Store(store_path) as other:
            seen["during"] = other.get_trace(tracing.get_active_trace_id())
        return 1

    trace_id = run_root(app)
    assert seen["during"].info.state == TraceState.IN_PROGRESS
    assert seen["during"].info.tags["mlflow.traceName"] == "app"
    assert read_back(trace_id, store_path).info.state == TraceState.OK


def _trace_in_child(path):
    tracing.set_tracking_uri(path)

    @tracing.trace
    def in_child():
        return os.getpid()

    in_child()
    print(tracing.get_last_active_trace_id())


def test_forked_child_writes_through_its_own_connection(store_path):
    run_root(lambda: "parent before fork")
    context = multiprocessing.get_context("fork")
    process = context.Process(target=_trace_in_child, args=(store_path,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    run_root(lambda: "parent after fork")
    with Store(store_path) as store:
        names = sorted(trace.info.tags["mlflow.traceName"] for trace in store.search_traces())
    assert names == ["<lambda>", "<lambda>", "in_child"]


def test_unwritable_store_is_logged_not_raised(tmp_path, caplog):
    directory = tmp_path / "a_directory"
    directory.mkdir()
    tracing.set_tracking_uri(directory)

    @tracing.trace
    def app(x):
        return x * 2

    with caplog.at_level(logging.WARNING):
        assert app(21) == 42
    assert "Could not" in caplog.text
    trace = tracing.get_trace(tracing.get_last_active_trace_id(), silent=True)
    assert trace is not None
    assert trace.data.spans[0].outputs == 42


def test_foreign_file_as_store_is_left_untouched(tmp_path, caplog):
    foreign = tmp_path / "notes.txt"
    foreign.write_bytes(b"not a database at all\n" * 10)
    before = foreign.read_bytes()
    tracing.set_tracking_uri(foreign)
    with caplog.at_level(logging.WARNING):
        run_root(lambda: "still runs")
    assert foreign.read_bytes() == before
    assert str(foreign) in caplog.text


# --- get_trace and search_traces ----------------------------------------------------------


def test_get_trace_unknown_id(caplog):
    with caplog.at_level(logging.WARNING):
        assert tracing.get_trace("tr-" + "2" * 32) is None
    assert "was not found" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert tracing.get_trace("tr-" + "2" * 32, silent=True) is None
    assert caplog.text == ""


def test_search_traces_frame_and_list(store_path):
    for question in ("a", "b", "c"):
        run_root(lambda q: q.upper(), question)
    frame = tracing.search_traces()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "trace_id",
        "trace",
        "client_request_id",
        "state",
        "request_time",
        "execution_duration",
        "request",
        "response",
        "trace_metadata",
        "tags",
        "spans",
        "assessments",
    ]
    assert sorted(frame["response"]) == ["A", "B", "C"]
    assert frame["request_time"].is_monotonic_decreasing
    traces = tracing.search_traces(return_type="list", max_results=2)
    assert len(traces) == 2
    assert traces[0].info.request_time >= traces[1].info.request_time
    filtered = tracing.search_traces(filter_string="attributes.status = 'OK'", return_type="list")
    assert len(filtered) == 3


def test_search_traces_rejects_unknown_return_type():
    with pytest.raises(InvalidParameterError, match="return_type"):
        tracing.search_traces(return_type="arrow")


def test_set_experiment_scopes_new_traces_and_search(store_path):
    run_root(lambda: "default experiment")
    experiment = tracing.set_experiment("support-bot")
    assert experiment.name == "support-bot"
    assert experiment.experiment_id != "0"
    assert tracing.set_experiment("support-bot").experiment_id == experiment.experiment_id
    trace_id = run_root(lambda: "in experiment")
    assert read_back(trace_id, store_path).info.experiment_id == experiment.experiment_id
    found = tracing.search_traces(return_type="list")
    assert [trace.info.trace_id for trace in found] == [trace_id]
    everything = tracing.search_traces(experiment_ids=["0", experiment.experiment_id], return_type="list")
    assert len(everything) == 2
    assert tracing.set_experiment(experiment_id=experiment.experiment_id).name == "support-bot"


def test_set_experiment_needs_a_name():
    with pytest.raises(InvalidParameterError):
        tracing.set_experiment()
    with pytest.raises(InvalidParameterError):
        tracing.set_experiment("  ")


# --- store location -----------------------------------------------------------------------


def test_tracking_uri_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracing.set_tracking_uri("sqlite:///relative.db")
    assert tracing.get_tracking_uri() == f"sqlite:///{tmp_path / 'relative.db'}"
    tracing.set_tracking_uri(f"sqlite:///{tmp_path / 'absolute.db'}")
    assert provider.get_store_path() == tmp_path / "absolute.db"
    tracing.set_tracking_uri(tmp_path / "as_path.db")
    assert provider.get_store_path() == tmp_path / "as_path.db"
    tracing.set_tracking_uri("plain.db")
    assert provider.get_store_path() == tmp_path / "plain.db"


@pytest.mark.parametrize("uri", ["http://localhost:5000", "databricks://profile", "sqlite:///", "", "sqlite:memory"])
def test_unsupported_tracking_uri_is_rejected(uri):
    with pytest.raises(InvalidParameterError):
        tracing.set_tracking_uri(uri)


def test_store_location_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracing.set_tracking_uri(None)
    assert provider.get_store_path() == tmp_path / "tui_eval.db"
    monkeypatch.setenv("TUI_EVAL_STORE", str(tmp_path / "from_env.db"))
    assert provider.get_store_path() == tmp_path / "from_env.db"
    trace_id = run_root(lambda: "env")
    assert read_back(trace_id, tmp_path / "from_env.db").info.state == TraceState.OK
    tracing.set_tracking_uri(tmp_path / "explicit.db")
    assert provider.get_store_path() == tmp_path / "explicit.db"


def test_switching_store_sends_new_traces_to_new_file(tmp_path):
    tracing.set_tracking_uri(tmp_path / "first.db")
    first = run_root(lambda: 1)
    tracing.set_tracking_uri(tmp_path / "second.db")
    second = run_root(lambda: 2)
    with Store(tmp_path / "first.db") as store:
        assert store.get_trace(first) is not None
        assert store.get_trace(second) is None
    assert read_back(second, tmp_path / "second.db") is not None


def test_feedback_value_types_round_trip(store_path):
    trace_id = run_root(lambda: 0)
    for name, value in (("flag", True), ("count", 3), ("ratio", 0.25), ("label", "yes"), ("parts", [1, "a"])):
        tracing.log_feedback(trace_id=trace_id, name=name, value=value)
    found = {item.name: item.value for item in tracing.get_trace(trace_id).search_assessments(type="feedback")}
    assert found == {"flag": True, "count": 3, "ratio": 0.25, "label": "yes", "parts": [1, "a"]}
    assert isinstance(Feedback(value=1).value, int)


# --- concurrency --------------------------------------------------------------------------


def test_roots_in_many_threads_are_all_stored(store_path):
    import threading

    @tracing.trace
    def step(i):
        return i

    @tracing.trace
    def request(worker, n):
        return [step(i) for i in range(n)]

    def worker(index):
        for _ in range(15):
            request(index, 3)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    traces = tracing.search_traces(return_type="list")
    assert len(traces) == 90
    assert all(len(trace.data.spans) == 4 for trace in traces)
    assert all(trace.info.state == TraceState.OK for trace in traces)


def test_concurrent_root_tasks_are_separate_traces(store_path):
    import asyncio

    @tracing.trace
    async def handle(i):
        await asyncio.sleep(0.001)
        with tracing.start_span("inner") as span:
            span.set_inputs(i)
            await asyncio.sleep(0)
        return i

    async def main():
        return await asyncio.gather(*(handle(i) for i in range(10)))

    assert asyncio.run(main()) == list(range(10))
    traces = tracing.search_traces(return_type="list")
    assert len(traces) == 10
    for trace in traces:
        root, inner = trace.data.spans
        assert inner.parent_id == root.span_id
        assert inner.inputs == root.inputs["i"]


def test_span_dict_has_mlflow_keys(store_path):
    trace_id = run_root(lambda: "x")
    span_dict = read_back(trace_id, store_path).data.spans[0].to_dict()
    assert set(span_dict) == {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "events",
        "status",
        "attributes",
        "links",
    }
    assert span_dict["status"] == {"code": "STATUS_CODE_OK", "message": ""}
    assert span_dict["attributes"]["mlflow.traceRequestId"] == json.dumps(trace_id)
    assert span_dict["attributes"]["mlflow.spanType"] == '"UNKNOWN"'


def test_process_killed_mid_trace_leaves_visible_trace(store_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import os
        import tui_eval

        tui_eval.set_tracking_uri({str(store_path)!r})

        @tui_eval.trace
        def app():
            print(tui_eval.get_current_active_span().trace_id, flush=True)
            os._exit(3)

        app()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    trace_id = result.stdout.strip()
    with Store(store_path) as store:
        trace = store.get_trace(trace_id)
    assert trace is not None
    assert trace.info.state == TraceState.ERROR
    assert trace.info.tags["mlflow.traceName"] == "app"
    assert "ended before the trace finished" in trace.info.trace_metadata["tui_eval.incomplete"]
