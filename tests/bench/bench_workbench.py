"""Benchmark: save -> scores with the workbench, for 1,000 and 100,000 stored demo-shaped traces.

Run by hand: ``python -m pytest -m bench tests/bench/bench_workbench.py -s -p no:cacheprovider``
(``-k 1000`` for the small case only; the 100,000-trace store takes a few minutes to write).
Each case prints its figures; RESULTS.md records them with the machine they came from.

Measured per save, from the moment before the module is written:
- *started*: the session's GenerationStarted (file event plus the watcher's quiet period);
- *first visible*: the first ResultsReceived, which must hold the 50 traces marked visible;
- *all*: GenerationFinished (every trace scored, metrics and the diff computed);
- *worker scoring*: the wall seconds the workers spent scoring, summed over workers, and their
  CPU seconds;
- *session CPU*: CPU seconds of the test process (the session's loop, dispatcher and watcher
  threads) from the save to GenerationFinished.
The store write that follows each generation runs in a writer process (at niceness 10) and is
not included. With 1,000 traces the next save waits for it. With 100,000 it does not, because
a write of 300,000 assessments takes about a minute here, so that writer runs during the next
saves.
"""

from __future__ import annotations

import statistics
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_workbench_support import EventRecorder, make_store, write_module  # noqa: E402
from tui_eval.workbench import GenerationFinished, GenerationStarted, ResultsReceived, Session  # noqa: E402

pytestmark = pytest.mark.bench

SAVES = 5
VISIBLE = 50


def scorers(version: int) -> str:
    return textwrap.dedent(
        f"""
        from tui_eval.genai.scorers import scorer

        @scorer
        def has_fact(outputs, expectations):
            return expectations.get("expected_fact", "").lower() in outputs.lower()

        @scorer
        def response_length(outputs):
            return len(outputs) + {version}

        @scorer
        def is_polite(outputs):
            return "please" in outputs.lower() or outputs.endswith(".")
        """
    )


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"


@pytest.mark.parametrize("count", [1_000, 100_000])
def test_save_to_scores(tmp_path, count):
    store = tmp_path / "traces.db"
    started = time.monotonic()
    trace_ids = make_store(store, count)
    print(f"\n[{count} traces] store written in {time.monotonic() - started:.1f} s")

    module = tmp_path / "scorers.py"
    module.write_text(scorers(0))
    session = Session(store, module)
    recorder = EventRecorder()
    session.subscribe(recorder)
    visible = session_visible = trace_ids[-VISIBLE:]  # newest first in the store's order
    session.set_visible(session_visible)
    started = time.monotonic()
    session.start()
    try:
        first = recorder.wait_for(lambda e: isinstance(e, GenerationFinished), timeout=900)
        print(f"[{count} traces] session start to first generation finished: {time.monotonic() - started:.1f} s "
              f"(generation itself {first.elapsed_s:.2f} s)")
        warm_started = time.monotonic()
        assert session.wait_warm(900)
        print(f"[{count} traces] zygote built every Trace object {time.monotonic() - warm_started:.1f} s later")
        assert session.wait_idle(300, include_writes=True)

        to_started, to_visible, to_all, scoring, scoring_cpu, session_cpu = [], [], [], [], [], []
        for version in range(1, SAVES + 1):
            mark = recorder.mark()
            saved = time.monotonic()
            cpu_before = time.process_time()
            write_module(module, scorers(version))
            done = recorder.wait_for(lambda e: isinstance(e, GenerationFinished), since=mark, timeout=120)
            session_cpu.append(time.process_time() - cpu_before)
            events = recorder.events[mark:]
            start_at = next(at for at, e in events if isinstance(e, GenerationStarted))
            first_batch_at, first_batch = next((at, e) for at, e in events if isinstance(e, ResultsReceived))
            finished_at = next(at for at, e in events if isinstance(e, GenerationFinished))
            assert set(visible) <= set(first_batch.results), "the first batch must hold the visible traces"
            assert done.metrics["response_length/mean"] > version
            to_started.append(start_at - saved)
            to_visible.append(first_batch_at - saved)
            to_all.append(finished_at - saved)
            scoring.append(done.timings["worker_scoring_s"])
            scoring_cpu.append(done.timings["worker_cpu_s"])
            assert session.wait_idle(120, include_writes=count <= 10_000)
            time.sleep(0.5)
    finally:
        session.stop()

    print(f"[{count} traces] save -> GenerationStarted: {median_ms(to_started)}")
    print(f"[{count} traces] save -> first {VISIBLE} visible: {median_ms(to_visible)}")
    print(f"[{count} traces] save -> all results: {median_ms(to_all)}")
    print(f"[{count} traces] started -> all results: "
          f"{median_ms([a - s for a, s in zip(to_all, to_started)])}")
    print(f"[{count} traces] worker scoring time (summed over workers): {median_ms(scoring)}")
    print(f"[{count} traces] worker CPU time (summed over workers): {median_ms(scoring_cpu)}")
    print(f"[{count} traces] session CPU time, save to GenerationFinished: {median_ms(session_cpu)}")
