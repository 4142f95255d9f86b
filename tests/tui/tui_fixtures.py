"""Builds stores with fixed ids and times for the TUI tests, so screens are the same every run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tui_eval.entities import Span, SpanEvent, SpanStatus, SpanStatusCode, Trace, TraceData, TraceInfo
from tui_eval.store import Store

# 2025-01-01 12:00:00 UTC; the tests run with TZ=UTC.
START_MS = 1_735_732_800_000

# Texts that a markup parser would eat or turn into styles; they must be shown as written.
MARKUP_TEXTS = (
    "Result [00] done",
    "see [bold]x[/bold]",
    "[link=https://example.invalid]here[/link]",
    "[dim]step[/]",
    "validation error [input_value={'k[0]': 1}]",
)

# Emoji with a variation selector, a family ZWJ sequence, CJK and a combining accent.
WIDE_TEXTS = (
    "\u2764\ufe0f love \u2764\ufe0f",
    "family \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 ok",
    "\u6f22\u5b57\u30c6\u30b9\u30c8 CJK \u6f22\u5b57",
    "cafe\u0301 combining",
)


def trace_id(index: int) -> str:
    return f"tr-{index:032x}"


def span_id(index: int, position: int) -> str:
    return f"{index:08x}{position:08x}"


def _attributes(trace: str, span_type: str, inputs: Any = None, outputs: Any = None, **extra: Any) -> dict[str, str]:
    attributes = {
        "mlflow.traceRequestId": json.dumps(trace),
        "mlflow.spanType": json.dumps(span_type),
    }
    if inputs is not None:
        attributes["mlflow.spanInputs"] = json.dumps(inputs, ensure_ascii=False)
    if outputs is not None:
        attributes["mlflow.spanOutputs"] = json.dumps(outputs, ensure_ascii=False)
    for key, value in extra.items():
        attributes[key] = json.dumps(value, ensure_ascii=False)
    return attributes


def make_trace(
    index: int,
    *,
    question: str,
    answer: str,
    name: str = "answer",
    failed: bool = False,
    duration_ms: int = 1200,
    tokens: int | None = 42,
    extra_output_lines: int = 0,
) -> Trace:
    """A three-span trace: the app's root span, a chat model call and a tool call."""
    tid = trace_id(index)
    start_ns = (START_MS + index * 60_000) * 1_000_000
    end_ns = start_ns + duration_ms * 1_000_000
    output = answer if not extra_output_lines else answer + "".join(f"\nline {n} of the answer" for n in range(extra_output_lines))
    messages = [
        {"role": "system", "content": "You are a support assistant."},
        {"role": "user", "content": question},
    ]
    root = Span(
        trace_id=tid,
        span_id=span_id(index, 0),
        parent_id=None,
        name=name,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        status=SpanStatus(SpanStatusCode.ERROR, "ValueError: upstream failed") if failed else SpanStatus(SpanStatusCode.OK),
        attributes=_attributes(tid, "CHAIN", {"question": question}, output),
        events=[SpanEvent("exception", start_ns + 1_000_000, {"exception.type": "ValueError", "exception.message": "upstream failed", "exception.stacktrace": "Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: upstream failed"})] if failed else [],
    )
    llm = Span(
        trace_id=tid,
        span_id=span_id(index, 1),
        parent_id=root.span_id,
        name="chat.completions",
        start_time_ns=start_ns + duration_ms * 100_000,
        end_time_ns=start_ns + duration_ms * 800_000,
        status=SpanStatus(SpanStatusCode.OK),
        attributes=_attributes(
            tid,
            "CHAT_MODEL",
            {"model": "support-1", "messages": messages},
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": output}}]},
            **{"mlflow.chat.tokenUsage": {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}},
        ),
    )
    tool = Span(
        trace_id=tid,
        span_id=span_id(index, 2),
        parent_id=root.span_id,
        name="lookup_order",
        start_time_ns=start_ns + duration_ms * 820_000,
        end_time_ns=start_ns + duration_ms * 950_000,
        status=SpanStatus(SpanStatusCode.OK),
        attributes=_attributes(tid, "TOOL", {"order_id": index}, {"status": "shipped", "items": [1, 2]}),
    )
    metadata = {}
    if tokens is not None:
        metadata["mlflow.trace.tokenUsage"] = json.dumps({"input_tokens": 30, "output_tokens": tokens - 30, "total_tokens": tokens})
    info = TraceInfo(
        trace_id=tid,
        request_time=START_MS + index * 60_000,
        state="ERROR" if failed else "OK",
        execution_duration=duration_ms,
        trace_metadata=metadata,
        request_preview=question,
        response_preview=output,
    )
    return Trace(info, TraceData([root, llm, tool]))


def sample_traces() -> list[Trace]:
    """Twelve traces: plain ones, markup look-alikes, wide characters, an error and escapes."""
    questions = [
        "Where is my order?",
        "How do I get a refund?",
        *MARKUP_TEXTS,
        *WIDE_TEXTS,
        "Escape \x1b[31mred\x1b[0m and bell \x07 here",
    ]
    traces = []
    for index, question in enumerate(questions):
        answer = f"Answer to: {question}"
        traces.append(
            make_trace(index, question=question, answer=answer, failed=index == 1, duration_ms=300 + 97 * index)
        )
    return traces


def build_store(path: Path, traces: Iterable[Trace]) -> Path:
    with Store(path) as store:
        store.log_traces(traces)
    return path


def bulk_store(path: Path, count: int, *, output_lines: int = 0) -> Path:
    """A store of ``count`` generated traces, written in batches."""
    with Store(path) as store:
        batch = []
        for index in range(count):
            batch.append(
                make_trace(
                    index,
                    question=f"question number {index} about order {index % 97}",
                    answer=f"answer {index}",
                    duration_ms=100 + index % 900,
                    extra_output_lines=output_lines,
                )
            )
            if len(batch) == 1000:
                store.log_traces(batch)
                batch = []
        if batch:
            store.log_traces(batch)
    return path
