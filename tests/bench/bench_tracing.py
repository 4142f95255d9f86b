"""Benchmarks: the cost of tracing per span, and of a whole trace including its store writes.

Run by hand: ``python -m pytest -m bench tests/bench/bench_tracing.py -s -p no:cacheprovider``.
Each test prints its figures; RESULTS.md records them with the machine they came from.
The goal for a span with small inputs is 20 us or less.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

import tui_eval.tracing as tracing
from tui_eval.store import Store
from tui_eval.tracing import provider, recorder

pytestmark = pytest.mark.bench

CHILDREN_PER_ROOT = 100
REPEATS = 200
ROOT_TRACES = 300


@pytest.fixture(autouse=True)
def store_path(tmp_path):
    path = tmp_path / "bench.db"
    provider.reset()
    recorder.clear()
    tracing.set_tracking_uri(path)
    yield path
    provider.reset()
    recorder.clear()


def plain_add(x, y=1):
    return x + y


traced_add = tracing.trace(plain_add)


def _median_us(samples_ns: list[int], per: int) -> float:
    return statistics.median(samples_ns) / per / 1000


def _children_loop_ns(call) -> int:
    """Time CHILDREN_PER_ROOT calls of `call` inside one root span; the root's end is not timed."""
    with tracing.start_span("root"):
        started = time.perf_counter_ns()
        for i in range(CHILDREN_PER_ROOT):
            call(i)
        return time.perf_counter_ns() - started


def _baseline_ns() -> int:
    started = time.perf_counter_ns()
    for i in range(CHILDREN_PER_ROOT):
        plain_add(i)
    return time.perf_counter_ns() - started


def test_child_span_overhead_decorator():
    for _ in range(10):
        _children_loop_ns(traced_add)
    traced = [_children_loop_ns(traced_add) for _ in range(REPEATS)]
    plain = [_baseline_ns() for _ in range(REPEATS)]
    baseline = _median_us(plain, CHILDREN_PER_ROOT)
    median = _median_us(traced, CHILDREN_PER_ROOT) - baseline
    best = min(traced) / CHILDREN_PER_ROOT / 1000 - baseline
    print(
        f"\n@trace child span, inputs {{x, y}}, int output: {median:.2f} us per span "
        f"(median of {REPEATS} roots of {CHILDREN_PER_ROOT}; best root {best:.2f} us)"
    )
    trace = tracing.get_trace(tracing.get_last_active_trace_id())
    assert len(trace.data.spans) == CHILDREN_PER_ROOT + 1


def test_child_span_overhead_start_span():
    def block(i):
        with tracing.start_span("step") as span:
            span.set_inputs({"x": i, "y": 1})
            span.set_outputs(i + 1)

    for _ in range(10):
        _children_loop_ns(block)
    samples = [_children_loop_ns(block) for _ in range(REPEATS)]
    print(
        f"\nstart_span child span, set_inputs + set_outputs: {_median_us(samples, CHILDREN_PER_ROOT):.2f} us "
        f"per span (best root {min(samples) / CHILDREN_PER_ROOT / 1000:.2f} us)"
    )


def test_root_end_cost_per_child_span():
    """The root's end builds the trace (span copies, previews, usage) and writes it once."""

    def one_trace() -> tuple[recorder.TraceRecord, int]:
        with tracing.start_span("root") as root:
            for i in range(CHILDREN_PER_ROOT):
                traced_add(i)
            started = time.perf_counter_ns()
        return root._record, time.perf_counter_ns() - started

    for _ in range(5):
        one_trace()
    ends, builds = [], []
    for _ in range(50):
        record, elapsed = one_trace()
        ends.append(elapsed)
        started = time.perf_counter_ns()
        recorder.build_trace(record, list(record.spans), [])
        builds.append(time.perf_counter_ns() - started)
    end_us = statistics.median(ends) / 1000
    build_us = statistics.median(builds) / 1000
    print(
        f"\nroot end with {CHILDREN_PER_ROOT} children: {end_us:.0f} us in all, of which building the trace "
        f"{build_us:.0f} us ({build_us / (CHILDREN_PER_ROOT + 1):.2f} us per span) and the rest Store.log_trace"
    )


def test_whole_root_trace_with_store_writes(store_path):
    for i in range(20):
        traced_add(i)
    samples = []
    for i in range(ROOT_TRACES):
        started = time.perf_counter_ns()
        traced_add(i)
        samples.append(time.perf_counter_ns() - started)

    with Store(store_path) as store:
        trace = store.get_trace(tracing.get_last_active_trace_id())
        begins, logs = [], []
        for _ in range(100):
            started = time.perf_counter_ns()
            store.begin_trace(trace.info, os.getpid())
            begins.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            store.log_trace(trace)
            logs.append(time.perf_counter_ns() - started)
    total_us = statistics.median(samples) / 1000
    print(
        f"\nwhole one-span root trace: {total_us:.0f} us median ({1e6 / total_us:.0f} traces/s in one thread); "
        f"of which Store.begin_trace {statistics.median(begins) / 1000:.0f} us "
        f"and Store.log_trace {statistics.median(logs) / 1000:.0f} us"
    )


def test_encoding_small_values():
    from tui_eval.tracing.encoding import dump_value

    cases = {
        "str": "hello",
        "int": 42,
        "small dict": {"x": 1, "y": "abc"},
        "chat request": {"messages": [{"role": "user", "content": "Where is order 1234?"}], "k": 2},
    }
    lines = []
    for label, value in cases.items():
        runs = 20000
        started = time.perf_counter_ns()
        for _ in range(runs):
            dump_value(value)
        lines.append(f"{label} {(time.perf_counter_ns() - started) / runs / 1000:.2f} us")
    print("\ndump_value: " + ", ".join(lines))
