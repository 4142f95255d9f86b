"""Helpers for the workbench tests and benchmark: demo-shaped traces and an event recorder.

Not a test module itself; it is named so that the workbench tests can import it by name.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui_eval.entities import Trace
from tui_eval.store import Store

QUESTIONS = [
    ("Where is my order 1234?", "Your order 1234 shipped yesterday and arrives Friday.", "shipped"),
    ("How do I reset my password?", "Use the Forgot password link on the sign-in page.", "forgot password"),
    ("Can I return shoes after 30 days?", "Returns are accepted within 30 days of delivery.", "30 days"),
    ("Is the X100 waterproof?", "Yes, the X100 is waterproof to 10 metres.", "waterproof"),
    ("Do you ship to Canada?", "We ship to Canada; delivery takes 5 to 8 days.", "canada"),
]


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode("ascii")


def demo_trace_dict(number: int, *, request_time_ms: int | None = None) -> dict[str, Any]:
    """One trace shaped like the demo's support assistant: a CHAIN root and a CHAT_MODEL child, with an expectation."""
    question, answer, fact = QUESTIONS[number % len(QUESTIONS)]
    otel = f"{number:032x}"
    trace_id = "tr-" + otel
    root_id = f"{number * 2 + 1:016x}"
    child_id = f"{number * 2 + 2:016x}"
    start_ns = (request_time_ms or 1_750_000_000_000 + number * 1000) * 1_000_000
    messages = [
        {"role": "system", "content": "You are a helpful support assistant for an online shop."},
        {"role": "user", "content": f"{question} (ticket {number})"},
    ]
    reply = f"{answer} Ticket {number}."
    root = {
        "trace_id": _b64(otel),
        "span_id": _b64(root_id),
        "parent_span_id": None,
        "name": "support_assistant",
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": start_ns + 850_000_000,
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.traceRequestId": json.dumps(trace_id),
            "mlflow.spanType": '"CHAIN"',
            "mlflow.spanInputs": json.dumps({"messages": messages}),
            "mlflow.spanOutputs": json.dumps(reply),
        },
    }
    child = {
        "trace_id": _b64(otel),
        "span_id": _b64(child_id),
        "parent_span_id": _b64(root_id),
        "name": "Completions",
        "start_time_unix_nano": start_ns + 10_000_000,
        "end_time_unix_nano": start_ns + 840_000_000,
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.traceRequestId": json.dumps(trace_id),
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.spanInputs": json.dumps({"model": "gpt-4o-mini", "messages": messages, "temperature": 0}),
            "mlflow.spanOutputs": json.dumps(
                {
                    "id": f"chatcmpl-{number}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59},
                }
            ),
            "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 42, "output_tokens": 17, "total_tokens": 59}),
        },
    }
    info = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "0"}},
        "request_time": start_ns // 1_000_000,
        "execution_duration_ms": 850,
        "state": "OK",
        "request_preview": json.dumps({"messages": messages})[:1000],
        "response_preview": json.dumps(reply),
        "trace_metadata": {"mlflow.trace_schema.version": "3"},
        "tags": {"mlflow.traceName": "support_assistant"},
        "assessments": [
            {
                "assessment_id": f"a-{number:032x}",
                "assessment_name": "expected_fact",
                "trace_id": trace_id,
                "source": {"source_type": "HUMAN", "source_id": "dataset"},
                "create_time": "2025-06-01T12:00:00Z",
                "last_update_time": "2025-06-01T12:00:00Z",
                "expectation": {"value": fact},
            }
        ],
    }
    return {"info": info, "data": {"spans": [root, child]}}


def make_store(path: Path, count: int) -> list[str]:
    """Write ``count`` demo-shaped traces to a new store at ``path``; returns their ids."""
    traces = [Trace.from_dict(demo_trace_dict(number)) for number in range(count)]
    with Store(path) as store:
        store.log_traces(traces)
    return [trace.info.trace_id for trace in traces]


class EventRecorder:
    """Collect a session's events and wait for the ones a test expects."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._condition = threading.Condition()

    def __call__(self, event: Any) -> None:
        with self._condition:
            self.events.append((time.monotonic(), event))
            self._condition.notify_all()

    def of_type(self, kind: type, since: int = 0) -> list[Any]:
        with self._condition:
            return [event for _, event in self.events[since:] if isinstance(event, kind)]

    def mark(self) -> int:
        with self._condition:
            return len(self.events)

    def wait_for(self, predicate: Callable[[Any], bool], *, since: int = 0, timeout: float = 20.0) -> Any:
        """Return the first event after position ``since`` that satisfies ``predicate``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for _, event in self.events[since:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kinds = [type(event).__name__ for _, event in self.events[since:]]
                    raise AssertionError(f"no matching event within {timeout} s; events since mark: {kinds}")
                self._condition.wait(remaining)

    def quiet_for(self, seconds: float, *, since: int) -> list[Any]:
        """Wait ``seconds`` and return the events that arrived after ``since``."""
        time.sleep(seconds)
        with self._condition:
            return [event for _, event in self.events[since:]]


def write_module(path: Path, source: str) -> None:
    """Save a module in place (truncate and write), bumping its modification time."""
    path.write_text(source)
    stamp = time.time_ns()
    os.utime(path, ns=(stamp, stamp))
