"""Benchmarks: store write throughput for 5-span traces, and reading 10,000 stored traces back.

Run by hand: ``python -m pytest -m bench tests/bench/bench_store.py -s -p no:cacheprovider``.
Each test prints its figures; RESULTS.md records them with the machine they came from.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_store_helpers import make_trace  # noqa: E402

from tui_eval.store import Store  # noqa: E402
from tui_eval.store.frame import traces_to_dataframe  # noqa: E402

pytestmark = pytest.mark.bench

STORED = 10_000
REPEATS = 5


def timed(action, repeats=REPEATS):
    """Run ``action`` ``repeats`` times; return its last result and (wall, CPU) seconds per run.

    CPU time is reported beside wall time because other work on the machine slows the
    wall clock without changing how much work the store does.
    """
    seconds = []
    result = None
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        seconds.append((time.perf_counter() - started, time.process_time() - started_cpu))
    return result, seconds


def describe(seconds):
    wall = [item[0] for item in seconds]
    cpu = [item[1] for item in seconds]
    return (
        f"wall median {statistics.median(wall):.3f} s (best {min(wall):.3f} s), "
        f"CPU median {statistics.median(cpu):.3f} s"
    )


def test_write_throughput(tmp_path):
    traces = [make_trace(index, span_count=5) for index in range(3_000)]
    with Store(tmp_path / "one.db") as store:
        started, started_cpu = time.perf_counter(), time.process_time()
        for trace in traces:
            store.log_trace(trace)
        one_wall = len(traces) / (time.perf_counter() - started)
        one_cpu = len(traces) / (time.process_time() - started_cpu)
    batch = [make_trace(index, span_count=5) for index in range(STORED)]
    with Store(tmp_path / "batch.db") as store:
        started, started_cpu = time.perf_counter(), time.process_time()
        store.log_traces(batch)
        batch_wall = len(batch) / (time.perf_counter() - started)
        batch_cpu = len(batch) / (time.process_time() - started_cpu)
    print(f"\nlog_trace, one transaction per 5-span trace: {one_wall:,.0f} traces/s wall, {one_cpu:,.0f} per CPU second")
    print(f"log_traces, {STORED:,} 5-span traces in batches: {batch_wall:,.0f} traces/s wall, {batch_cpu:,.0f} per CPU second")


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("bench") / "store.db")
    store.log_traces(make_trace(index, span_count=5) for index in range(STORED))
    yield store
    store.close()


def test_search_traces_10k(full_store):
    import pandas  # noqa: F401  # imported before timing: the first import alone takes about a second

    traces, as_list = timed(lambda: full_store.search_traces())
    assert len(traces) == STORED
    frame, as_frame = timed(lambda: full_store.search_traces_frame())
    assert len(frame) == STORED
    _, via_entities = timed(lambda: traces_to_dataframe(traces), repeats=3)
    _, page = timed(lambda: full_store.list_summaries(limit=100))
    _, listing = timed(lambda: full_store.list_summaries())
    _, filtered = timed(lambda: full_store.search_traces(filter_string="span.type = 'LLM' AND tags.`mlflow.traceName` = 'app'"))
    print(f"\nsearch_traces -> list[Trace], {STORED:,} traces of 5 spans: {describe(as_list)}")
    print(f"search_traces_frame -> DataFrame, {STORED:,} traces: {describe(as_frame)}")
    print(f"traces_to_dataframe(list of {STORED:,} Trace): {describe(via_entities)}")
    print(f"search_traces with a span and a tag filter (all match): {describe(filtered)}")
    print(f"list_summaries, first 100: {describe(page)}; all {STORED:,}: {describe(listing)}")
