"""Benchmarks: OpenAI autolog overhead per chat call, and `tui-eval generate` of 1,000 rows.

Run by hand: ``python -m pytest -m bench tests/bench/bench_openai.py -s -p no:cacheprovider``.
The local LLM server runs in its own process, so that its handler threads do not compete
with the measured client for this process's GIL. Each test prints its figures; RESULTS.md
records them with the machine they came from.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

import tui_eval
import tui_eval.openai
from tui_eval.openai.recording import CHAT, CallRecording
from tui_eval.tracing import provider, recorder

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [
    {"role": "system", "content": "You are a helpful customer-support assistant."},
    {"role": "user", "content": "How much does a microwave cost?"},
]


def start_server_process(*options: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_eval.llm_server", "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    base_url = process.stdout.readline().strip()
    assert base_url.startswith("http://127.0.0.1:"), base_url
    return process, base_url


@pytest.fixture
def server_url():
    process, base_url = start_server_process()
    yield base_url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(autouse=True)
def store(tmp_path):
    provider.reset()
    recorder.clear()
    tui_eval.set_tracking_uri(tmp_path / "bench.db")
    yield tmp_path / "bench.db"
    tui_eval.openai.autolog(disable=True, silent=True)
    provider.reset()
    recorder.clear()


def test_autolog_overhead_per_chat_call(server_url):
    """Wall and CPU time per call, uninstrumented vs instrumented, alternating blocks in one open trace.

    The calls run inside an open parent span, so no trace is written to the store while
    they are timed: the difference is what autolog itself adds to each call.
    """
    client = openai.OpenAI(base_url=server_url, api_key="sk-bench-key-0000", max_retries=0)

    def call():
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def block(calls: int = 100) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            call()
        return (time.perf_counter() - wall) / calls * 1e6, (time.thread_time() - cpu) / calls * 1e6

    for _ in range(100):
        call()
    plain: list[tuple[float, float]] = []
    traced: list[tuple[float, float]] = []
    with tui_eval.start_span("bench parent"):
        for _ in range(15):
            tui_eval.openai.autolog(disable=True, silent=True)
            plain.append(block())
            tui_eval.openai.autolog(silent=True)
            traced.append(block())

    plain_wall = statistics.median(w for w, _ in plain)
    traced_wall = statistics.median(w for w, _ in traced)
    plain_cpu = statistics.median(c for _, c in plain)
    traced_cpu = statistics.median(c for _, c in traced)
    print(f"\nchat call, uninstrumented: wall {plain_wall:.0f} us, CPU {plain_cpu:.0f} us (median of 15 blocks of 100)")
    print(f"chat call, autolog:        wall {traced_wall:.0f} us, CPU {traced_cpu:.0f} us")
    print(f"difference:                wall {traced_wall - plain_wall:+.0f} us, CPU {traced_cpu - plain_cpu:+.0f} us")

    # The instrumentation alone, without HTTP: open the span, record the request, end it
    # with a real ChatCompletion. This isolates autolog's cost from the HTTP round trip's noise.
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    resource = client.chat.completions
    with tui_eval.start_span("bench parent"):
        walls, cpus = [], []
        for _ in range(7):
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(1000):
                recording = CallRecording.start(CHAT, resource, {"model": "gpt-4o-mini", "messages": MESSAGES})
                recording.end_with_response(response)
            walls.append((time.perf_counter() - wall) / 1000 * 1e6)
            cpus.append((time.thread_time() - cpu) / 1000 * 1e6)
    print(f"instrumentation only (span start, request, response, usage, masking, end), 7 rounds of 1000: "
          f"wall median {statistics.median(walls):.0f} us (best {min(walls):.0f}), "
          f"CPU median {statistics.median(cpus):.0f} us (best {min(cpus):.0f})")
    client.close()


def test_autolog_top_level_call(server_url):
    """A call outside any trace is its own trace: both store writes are part of its cost."""
    client = openai.OpenAI(base_url=server_url, api_key="sk-bench-key-0000", max_retries=0)
    tui_eval.openai.autolog(silent=True)
    for _ in range(50):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(100):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        samples.append((time.perf_counter() - started) / 100 * 1e6)
    print(f"\ntop-level chat call with autolog (one trace per call, store writes included): "
          f"median {statistics.median(samples):.0f} us per call")
    client.close()


def test_generate_1000_rows(tmp_path):
    """`tui-eval generate demo/app.py:sample_app` over 1,000 rows, server adding 50 ms per response."""
    demo_rows = [json.loads(line) for line in (ROOT / "demo" / "dataset.jsonl").read_text(encoding="utf-8").splitlines()]
    data = tmp_path / "rows.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for index in range(1000):
            handle.write(json.dumps(demo_rows[index % len(demo_rows)], ensure_ascii=False) + "\n")

    process, base_url = start_server_process("--latency-ms", "50")
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_BASE_URL": base_url, "TUI_EVAL_PROGRESS": "0"}
        env.pop("OPENAI_API_KEY", None)
        env.pop("TUI_EVAL_MAX_WORKERS", None)
        started = time.perf_counter()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run(
            [sys.executable, "-m", "tui_eval.cli", "generate", str(ROOT / "demo" / "app.py") + ":sample_app",
             "--data", str(data), "--store", str(tmp_path / "generate.db")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )
        total = time.perf_counter() - started
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    match = re.search(r"traces: (\d+) stored \((\d+) OK, (\d+) ERROR\) in ([\d.]+)s", result.stdout)
    assert match is not None, result.stdout
    assert int(match.group(1)) == 1000
    print(f"\n{result.stdout.strip()}")
    cpu = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime - children_before.ru_stime)
    print(f"generate of 1,000 rows: {float(match.group(4)):.2f} s for the rows, {total:.2f} s for the whole "
          f"command (start-up and imports included), {cpu:.2f} s of CPU in the generate process")
    print(f"load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
