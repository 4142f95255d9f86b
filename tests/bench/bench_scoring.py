"""Benchmarks: the scoring core and evaluate(data=stored traces) with three cheap scorers.

Run by hand: ``python -m pytest -m bench tests/bench/bench_scoring.py -s -p no:cacheprovider``.
Each test prints its figures; RESULTS.md records them with the machine they came from.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tui_eval.entities import (
    Expectation,
    Span,
    SpanStatus,
    SpanStatusCode,
    Trace,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from tui_eval.entities import ids
from tui_eval.genai import evaluate, scorer
from tui_eval.genai.scoring import item_from_trace, score_items
from tui_eval.store import Store
from tui_eval.tracing import provider

pytestmark = pytest.mark.bench


@scorer
def response_length(outputs):
    return len(outputs)


@scorer
def exact_match(outputs, expectations):
    return outputs == expectations.get("expected_response")


@scorer
def mentions_product(inputs, outputs):
    return "yes" if "X100" in outputs else "no"


SCORERS = [response_length, exact_match, mentions_product]


# NOTE: Span.from_dict reads a base64 id that starts with "0x" as a V2 hex id, so such ids
# do not survive the store's round trip yet; the bench avoids them.
def new_span_id() -> str:
    while True:
        span_id = ids.new_span_id()
        if not ids.hex_to_base64(span_id).lower().startswith("0x"):
            return span_id


def new_trace_id() -> str:
    while True:
        trace_id = ids.new_trace_id()
        if not ids.hex_to_base64(trace_id[3:]).lower().startswith("0x"):
            return trace_id


def make_trace(index: int) -> Trace:
    """Build a support-chat trace: a CHAIN root and a CHAT_MODEL child, with one expectation."""
    trace_id = new_trace_id()
    start = 1_750_000_000_000_000_000 + index * 1_000_000_000
    question = f"Is the X100 waterproof? (ticket {index})"
    answer = "Yes, the X100 is rated IP68." if index % 3 else "Please contact support."
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
    root_id = new_span_id()

    def span(span_id, parent, name, span_type, inputs, outputs, offset):
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_id=parent,
            name=name,
            start_time_ns=start + offset,
            end_time_ns=start + 800_000_000 - offset,
            status=SpanStatus(SpanStatusCode.OK),
            attributes={
                "mlflow.traceRequestId": json.dumps(trace_id),
                "mlflow.spanType": json.dumps(span_type),
                "mlflow.spanInputs": json.dumps(inputs),
                "mlflow.spanOutputs": json.dumps(outputs),
            },
        )

    spans = [
        span(root_id, None, "sample_app", "CHAIN", {"messages": messages[1:]}, answer, 0),
        span(
            new_span_id(),
            root_id,
            "Completions",
            "CHAT_MODEL",
            {"model": "gpt-4o-mini", "messages": messages},
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]},
            50_000_000,
        ),
    ]
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id("0"),
        request_time=start // 1_000_000,
        state=TraceState.OK,
        request_preview=question,
        response_preview=answer,
        execution_duration=800,
        trace_metadata={"mlflow.trace_schema.version": "3"},
        tags={"mlflow.traceName": "sample_app"},
        assessments=[
            Expectation(name="expected_response", value="Yes, the X100 is rated IP68.", trace_id=trace_id)
        ],
    )
    return Trace(info, TraceData(spans))


@pytest.fixture
def stored_store(tmp_path):
    def build(count: int) -> Store:
        provider.set_tracking_uri(tmp_path / "bench.db")
        store = provider.get_store()
        batch = 5000
        for start in range(0, count, batch):
            store.log_traces([make_trace(index) for index in range(start, min(count, start + batch))])
        return store

    os.environ["TUI_EVAL_PROGRESS"] = "0"
    yield build
    provider.reset()


class Timer:
    """Wall-clock and CPU time of a block; CPU time is steadier on a shared, loaded machine."""

    def __enter__(self) -> Timer:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def report(label: str, timer: Timer, traces: int) -> None:
    per_cell_us = timer.cpu / traces / len(SCORERS) * 1e6
    print(
        f"\n{label}: wall {timer.wall:.3f} s, cpu {timer.cpu:.3f} s for {traces} traces, "
        f"cpu {timer.cpu / traces * 1e6:.1f} us/trace, {per_cell_us:.2f} us/trace/scorer"
    )


@pytest.mark.parametrize("count", [1_000, 100_000])
def test_bench_scoring_core(stored_store, count):
    store = stored_store(count)

    with Timer() as load:
        traces = store.search_traces()
    with Timer() as build:
        items = [item_from_trace(trace) for trace in traces]
    with Timer() as scoring:
        cells = sum(len(feedbacks) for _, feedbacks in score_items(SCORERS, items))

    assert cells == 3 * count
    report(f"store.search_traces {count}", load, count)
    report(f"item_from_trace {count}", build, count)
    report(f"score_items {count}", scoring, count)


@pytest.mark.parametrize("count", [1_000, 100_000])
def test_bench_evaluate_stored_traces(stored_store, count):
    store = stored_store(count)
    # Warm up: the first call imports numpy for the aggregations.
    evaluate(data=store.search_traces(max_results=10), scorers=SCORERS)
    traces = store.search_traces()

    with Timer() as evaluation:
        result = evaluate(data=traces, scorers=SCORERS)
    with Timer() as building:
        frame = result.result_df

    assert len(frame) == count
    assert result.metrics["response_length/mean"] > 0
    report(f"evaluate(list[Trace]) {count}", evaluation, count)
    report(f"first result_df access {count}", building, count)


@pytest.mark.parametrize("count", [1_000])
def test_bench_evaluate_search_frame(stored_store, count):
    stored_store(count)
    from tui_eval.tracing import search_traces

    evaluate(data=search_traces(max_results=10), scorers=SCORERS)
    frame = search_traces()
    with Timer() as evaluation:
        result = evaluate(data=frame, scorers=SCORERS)

    assert len(result.result_df) == count
    report(f"evaluate(search_traces frame) {count}", evaluation, count)
