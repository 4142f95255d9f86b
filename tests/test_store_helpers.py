"""Trace builders shared by the store, filter, io and CLI tests (this module holds no tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tui_eval.entities import ids
from tui_eval.entities.span import Span, SpanEvent, SpanStatus
from tui_eval.entities.trace import Trace, TraceData
from tui_eval.entities.trace_info import TraceInfo, TraceLocation
from tui_eval.entities.trace_state import TraceState

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_317 = REPO_ROOT / "tests" / "fixtures" / "mlflow-3.17"
BASE_TIME_MS = 1_750_000_000_000
_UNSET = object()


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def make_span(
    trace_id: str,
    name: str,
    *,
    span_id: str | None = None,
    parent_id: str | None = None,
    span_type: str = "UNKNOWN",
    inputs: Any = _UNSET,
    outputs: Any = _UNSET,
    attributes: dict[str, Any] | None = None,
    status: str = "OK",
    start_ns: int = BASE_TIME_MS * 1_000_000,
    duration_ns: int = 1_000_000,
    events: list[SpanEvent] | None = None,
) -> Span:
    raw = {"mlflow.traceRequestId": encode(trace_id), "mlflow.spanType": encode(span_type)}
    if inputs is not _UNSET:
        raw["mlflow.spanInputs"] = encode(inputs)
    if outputs is not _UNSET:
        raw["mlflow.spanOutputs"] = encode(outputs)
    for key, value in (attributes or {}).items():
        raw[key] = encode(value)
    return Span(
        trace_id=trace_id,
        span_id=span_id or ids.new_span_id(),
        parent_id=parent_id,
        name=name,
        start_time_ns=start_ns,
        end_time_ns=start_ns + duration_ns,
        status=SpanStatus(status, "" if status != "ERROR" else "ValueError: boom"),
        attributes=raw,
        events=events,
    )


def make_trace(
    index: int = 0,
    *,
    trace_id: str | None = None,
    name: str = "app",
    span_count: int = 5,
    inputs: Any = _UNSET,
    outputs: Any = _UNSET,
    state: TraceState = TraceState.OK,
    request_time: int | None = None,
    duration: int | None = 5,
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    child_type: str = "LLM",
    child_attributes: dict[str, Any] | None = None,
    experiment_id: str = "0",
    client_request_id: str | None = None,
    request_preview: str | None = None,
    response_preview: str | None = None,
) -> Trace:
    """Build a finished trace: a CHAIN root and ``span_count - 1`` children."""
    trace_id = trace_id or ids.new_trace_id()
    start_ms = BASE_TIME_MS + index if request_time is None else request_time
    start_ns = start_ms * 1_000_000
    root_id = ids.new_span_id()
    root_inputs = {"question": f"question {index}"} if inputs is _UNSET else inputs
    root_outputs = f"answer {index}" if outputs is _UNSET else outputs
    spans = [
        make_span(
            trace_id,
            name,
            span_id=root_id,
            span_type="CHAIN",
            inputs=root_inputs,
            outputs=root_outputs,
            start_ns=start_ns,
            duration_ns=(duration or 1) * 1_000_000,
            status="ERROR" if state == TraceState.ERROR else "OK",
        )
    ]
    for child in range(1, span_count):
        spans.append(
            make_span(
                trace_id,
                f"step_{child}",
                parent_id=root_id,
                span_type=child_type,
                inputs={"prompt": f"prompt {index}.{child}"},
                outputs={"text": f"output {index}.{child}"},
                attributes=child_attributes,
                start_ns=start_ns + child * 1000,
                duration_ns=500,
            )
        )
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation(experiment_id),
        request_time=start_ms,
        state=state,
        request_preview=request_preview,
        response_preview=response_preview,
        client_request_id=client_request_id,
        execution_duration=duration,
        trace_metadata={"mlflow.trace_schema.version": "3", **(metadata or {})},
        tags={"mlflow.traceName": name, **(tags or {})},
    )
    return Trace(info, TraceData(spans))


def subprocess_env() -> dict[str, str]:
    """Return an environment in which a child Python imports this checkout's tui_eval."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("TUI_EVAL_STORE", None)
    return env


PYTHON = sys.executable
