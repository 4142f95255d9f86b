"""Rows the store writes, built from entities, and the summary the list view reads back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tui_eval.entities import ids
from tui_eval.entities._time import rfc3339_to_ms
from tui_eval.entities.span import SpanAttributeKey
from tui_eval.entities.trace import Trace
from tui_eval.entities.trace_state import TraceState

TRACE_NAME_TAG = "mlflow.traceName"
SOURCE_RUN_KEY = "mlflow.sourceRun"
TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
ASSESSMENT_RUN_KEY = "mlflow.assessment.sourceRunId"
GENERATION_KEY = "tui_eval.generation"

# The list view shows previews cut to this many characters, as MLflow's OSS server does.
PREVIEW_CHARS = 1000


@dataclass(frozen=True)
class TraceSummary:
    """The columns of one row in the trace list; reading it never touches a trace's spans."""

    trace_id: str
    name: str | None
    request_time: int
    execution_duration: int | None
    state: str
    request_preview: str | None
    response_preview: str | None
    total_tokens: int | None
    span_count: int


@dataclass
class TraceRecord:
    """Everything ``log_trace`` writes for one trace, ready for ``executemany``."""

    trace_row: tuple[Any, ...]
    tag_rows: list[tuple[str, str, str]]
    metadata_rows: list[tuple[str, str, str]]
    span_rows: list[tuple[Any, ...]]
    assessment_rows: list[tuple[Any, ...]]


# Column order of the INSERT statements in store.py.
TRACE_COLUMNS = (
    "trace_id",
    "experiment_id",
    "client_request_id",
    "state",
    "request_time",
    "execution_duration",
    "end_time",
    "name",
    "request_preview",
    "response_preview",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "span_count",
    "size_bytes",
    "run_id",
    "writer_pid",
    "writer_host",
    "writer_started",
    "info_json",
    "spans_json",
)
SPAN_COLUMNS = (
    "trace_id",
    "position",
    "span_id",
    "parent_span_id",
    "name",
    "type",
    "status",
    "start_time_ns",
    "end_time_ns",
    "content",
)
ASSESSMENT_COLUMNS = (
    "assessment_id",
    "trace_id",
    "name",
    "kind",
    "value_json",
    "value_text",
    "error_code",
    "rationale",
    "source_type",
    "source_id",
    "run_id",
    "span_id",
    "generation",
    "create_time",
    "last_update_time",
    "valid",
    "assessment_json",
)


# One encoder for every write: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def dumps(value: Any) -> str:
    """Encode stored JSON: UTF-8 text kept as is, so LIKE filters see the characters written."""
    return _ENCODER.encode(value)


def span_type_of(span: Any) -> str | None:
    """Return the span's type without a JSON decode in the usual case (a plain quoted string)."""
    raw = span.raw_attributes.get(SpanAttributeKey.SPAN_TYPE)
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"' and "\\" not in raw:
        return raw[1:-1]
    decoded = span.span_type
    return decoded if isinstance(decoded, str) else None


def build_record(trace: Trace, *, writer: tuple[int, str, int | None] | None = None) -> TraceRecord:
    """Turn ``trace`` into the rows of every table.

    With ``writer`` (pid, host, process start) the record is an IN_PROGRESS placeholder:
    its state is IN_PROGRESS whatever the trace's, and it carries no assessments.

    Text that cannot be encoded as UTF-8 (lone UTF-16 surrogates, which SQLite cannot store)
    is replaced with U+FFFD before writing.
    """
    try:
        return _build_record(trace, writer)
    except UnicodeEncodeError:
        clean = Trace.from_dict(replace_surrogates(trace.to_dict()))
        return _build_record(clean, writer)


def replace_surrogates(value: Any) -> Any:
    """Return ``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {replace_surrogates(key): replace_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(item) for item in value]
    return value


def _build_record(trace: Trace, writer: tuple[int, str, int | None] | None) -> TraceRecord:
    info = trace.info
    trace_id = info.trace_id
    info_dict = info.to_dict()
    assessment_dicts = info_dict.pop("assessments", None) or []
    state = info.state.value
    if writer is not None:
        state = info_dict["state"] = TraceState.IN_PROGRESS.value
        assessment_dicts = []
    # NOTE: keys of the trace's "data" dict other than "spans" are not stored; MLflow 3 writes
    # none, and MLflow 2's "request"/"response" repeat the root span.
    spans = trace.data.spans

    contents = [dumps(span.to_dict()) for span in spans]
    spans_json = "[" + ", ".join(contents) + "]"
    info_json = dumps(info_dict)

    span_rows = []
    root = None
    for position, (span, content) in enumerate(zip(spans, contents)):
        if root is None and span.parent_id is None:
            root = span
        span_rows.append(
            (
                trace_id,
                position,
                span.span_id,
                span.parent_id,
                span.name,
                span_type_of(span),
                span.status.status_code.value,
                span.start_time_ns,
                span.end_time_ns,
                content,
            )
        )

    tags = info.tags
    metadata = info.trace_metadata
    name = tags.get(TRACE_NAME_TAG) or (root.name if root is not None else None)
    request_preview = info.request_preview
    response_preview = info.response_preview
    if root is not None:
        if request_preview is None:
            request_preview = root.raw_attributes.get(SpanAttributeKey.INPUTS)
        if response_preview is None:
            response_preview = root.raw_attributes.get(SpanAttributeKey.OUTPUTS)
    usage = info.token_usage or _sum_span_token_usage(spans)
    duration = info.execution_duration
    pid, host, started = writer if writer is not None else (None, None, None)

    trace_row = (
        trace_id,
        info.experiment_id or "0",
        info.client_request_id,
        state,
        info.request_time,
        duration,
        info.request_time + duration if duration is not None else None,
        name,
        _cut(request_preview),
        _cut(response_preview),
        _int_or_none(usage.get("input_tokens")) if usage else None,
        _int_or_none(usage.get("output_tokens")) if usage else None,
        _int_or_none(usage.get("total_tokens")) if usage else None,
        len(spans),
        # Encoding also raises UnicodeEncodeError for text SQLite cannot store (see build_record).
        len(info_json.encode("utf-8")) + len(spans_json.encode("utf-8")),
        metadata.get(SOURCE_RUN_KEY),
        pid,
        host,
        started,
        info_json,
        spans_json,
    )
    assessment_rows = [assessment_row(item, trace_id) for item in assessment_dicts]
    for row in assessment_rows:
        row[-1].encode("utf-8")
    return TraceRecord(
        trace_row=trace_row,
        tag_rows=[(trace_id, key, value) for key, value in tags.items()],
        metadata_rows=[(trace_id, key, value) for key, value in metadata.items()],
        span_rows=span_rows,
        assessment_rows=assessment_rows,
    )


def assessment_row(
    data: dict[str, Any], trace_id: str | None = None, times: tuple[int | None, int | None] | None = None
) -> tuple[Any, ...]:
    """Build an assessments row from an assessment's dict form, filling its id and trace id if absent.

    ``data`` is updated in place, so the stored JSON carries the assigned id. ``times`` are
    the create and last-update times in ms when the caller has them, which saves parsing
    the dict's RFC 3339 strings.
    """
    if not data.get("assessment_id"):
        data["assessment_id"] = ids.new_assessment_id()
    if trace_id is not None and not data.get("trace_id"):
        data["trace_id"] = trace_id
    if "feedback" in data:
        kind = "feedback"
        body = data.get("feedback") or {}
        value = body.get("value")
        error = body.get("error") or {}
        error_code = error.get("error_code")
    else:
        kind = "expectation"
        body = data.get("expectation") or {}
        error_code = None
        if "serialized_value" in body:
            try:
                value = json.loads((body.get("serialized_value") or {}).get("value", "null"))
            except ValueError:
                value = (body.get("serialized_value") or {}).get("value")
        else:
            value = body.get("value")
    source = data.get("source") or {}
    metadata = data.get("metadata") or {}
    value_json = dumps(value) if value is not None else None
    if times is None:
        times = (_time_or_none(data.get("create_time")), _time_or_none(data.get("last_update_time")))
    return (
        data["assessment_id"],
        data.get("trace_id"),
        data.get("assessment_name"),
        kind,
        value_json,
        value if isinstance(value, str) else value_json,
        error_code,
        data.get("rationale"),
        source.get("source_type"),
        source.get("source_id"),
        metadata.get(ASSESSMENT_RUN_KEY),
        data.get("span_id"),
        metadata.get(GENERATION_KEY),
        times[0],
        times[1],
        0 if data.get("valid") is False else 1,
        dumps(data),
    )


def _sum_span_token_usage(spans: list[Any]) -> dict[str, int] | None:
    """Add up the token usage the LLM spans recorded, for traces whose metadata has none."""
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    found = False
    for span in spans:
        raw = span.raw_attributes.get(SpanAttributeKey.CHAT_USAGE)
        if not raw:
            continue
        try:
            usage = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if not isinstance(usage, dict):
            continue
        for key in totals:
            number = _int_or_none(usage.get(key))
            if number is not None:
                totals[key] += number
                found = True
    return totals if found else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return None


def _time_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return rfc3339_to_ms(value)
    except (ValueError, TypeError):
        return None


def _cut(text: Any) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= PREVIEW_CHARS:
        return text
    return text[: PREVIEW_CHARS - 3] + "..."
