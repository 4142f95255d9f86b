"""A store with one huge trace and a few huge outputs beside thousands of ordinary traces."""

from __future__ import annotations

import time

import pytest

from tui_eval.entities import ids
from tui_eval.entities.trace import Trace, TraceData
from tui_eval.store import Store

from test_store_helpers import BASE_TIME_MS, make_span, make_trace

HUGE_SPANS = 30_000
BIG_OUTPUT = "y" * (2 * 1024 * 1024)


def huge_trace() -> Trace:
    """Build one trace with 30,000 spans: a root and a flat list of tool calls."""
    base = make_trace(5000, name="huge", span_count=1, request_time=BASE_TIME_MS + 10_000)
    trace_id = base.info.trace_id
    root = base.data.spans[0]
    spans = [root]
    for index in range(1, HUGE_SPANS):
        spans.append(
            make_span(
                trace_id,
                f"tool_{index}",
                span_id=ids.new_span_id(),
                parent_id=root.span_id,
                span_type="TOOL",
                inputs={"i": index},
                outputs=index,
                start_ns=root.start_time_ns + index,
                duration_ns=1,
            )
        )
    return Trace(base.info, TraceData(spans))


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "store.db"
    store = Store(path)
    store.log_traces(make_trace(index) for index in range(2000))
    store.log_trace(huge_trace())
    for index in range(3):
        store.log_trace(make_trace(3000 + index, name="big_output", outputs=BIG_OUTPUT, inputs=BIG_OUTPUT))
    yield store
    store.close()


def capture_sql(store: Store, action):
    statements: list[str] = []
    store._connection.set_trace_callback(statements.append)
    try:
        result = action()
    finally:
        store._connection.set_trace_callback(None)
    return result, statements


def test_listing_reads_summary_columns_only(big_store):
    page, statements = capture_sql(big_store, lambda: big_store.list_summaries(limit=100))
    everything, more = capture_sql(big_store, lambda: big_store.list_summaries(filter_string="status = 'OK'"))
    for statement in statements + more:
        assert "spans_json" not in statement
        assert "info_json" not in statement
        assert "FROM spans" not in statement
    assert len(page) == 100
    assert len(everything) == 2004
    names = {summary.name: summary for summary in everything}
    assert names["huge"].span_count == HUGE_SPANS
    assert len(names["big_output"].response_preview) == 1000
    assert len(names["big_output"].request_preview) == 1000


def test_listing_stays_fast(big_store):
    started = time.perf_counter()
    big_store.list_summaries(limit=100)
    page_seconds = time.perf_counter() - started
    started = time.perf_counter()
    big_store.list_summaries()
    all_seconds = time.perf_counter() - started
    # Typically a few milliseconds; the bounds only catch a list that reads span data.
    assert page_seconds < 0.5
    assert all_seconds < 2.0


def test_huge_trace_reads_back_whole(big_store):
    [trace_id] = big_store.search_trace_ids("name = 'huge'")
    trace = big_store.get_trace(trace_id)
    assert len(trace.data.spans) == HUGE_SPANS
    assert trace.data.spans[-1].outputs == HUGE_SPANS - 1
    assert big_store.search_trace_ids("span.name = 'tool_29999'") == [trace_id]


def test_big_outputs_read_back_whole(big_store):
    traces = big_store.search_traces(filter_string="name = 'big_output'")
    assert len(traces) == 3
    assert all(trace.data.spans[0].outputs == BIG_OUTPUT for trace in traces)
