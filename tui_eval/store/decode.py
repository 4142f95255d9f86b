"""Fast reading of stored traces: entities and DataFrame rows from the JSON the store wrote.

The store writes ``info.to_dict()`` and each ``span.to_dict()`` (MLflow 3.6+ form: base64 ids,
``STATUS_CODE_*`` codes), so reading them back does not need ``Trace.from_dict``'s detection
of every historical layout. The fast path builds the same entities directly, which about
halves the time ``search_traces`` takes for 10,000 traces (tests/bench/bench_store.py). Any
shape it does not expect falls back to ``Trace.from_dict``, and tests check that both give equal
traces.
"""

from __future__ import annotations

import binascii
import gc
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tui_eval.entities.assessment import Assessment
from tui_eval.entities.span import Span, SpanAttributeKey, SpanEvent, SpanStatus, SpanStatusCode, decode_attribute
from tui_eval.entities.trace import Trace, TraceData
from tui_eval.entities.trace_info import TraceInfo, TraceLocation
from tui_eval.entities.trace_state import TraceState
from tui_eval.errors import TraceFormatError

logger = logging.getLogger(__name__)

_SPAN_KEYS = frozenset(
    {
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "events",
        "status",
        "attributes",
    }
)
_SPAN_KEY_COUNT = len(_SPAN_KEYS)
_INFO_KEYS = frozenset(
    {
        "trace_id",
        "trace_location",
        "request_time",
        "state",
        "request_preview",
        "response_preview",
        "client_request_id",
        "execution_duration_ms",
        "trace_metadata",
        "tags",
        "assessments",
    }
)
_STATUS_CODES = {
    "STATUS_CODE_OK": SpanStatusCode.OK,
    "STATUS_CODE_ERROR": SpanStatusCode.ERROR,
    "STATUS_CODE_UNSET": SpanStatusCode.UNSET,
}
_STATES = {state.value: state for state in TraceState}


class _Unexpected(Exception):
    """The stored JSON is not in the shape the fast path reads; use Trace.from_dict."""


def stored_trace(
    info: dict[str, Any],
    spans: list[dict[str, Any]],
    assessments: list[dict[str, Any]],
    state: str,
    request_time: int,
) -> Trace:
    """Build a Trace from the stored info dict, span dicts and assessment dicts.

    ``state`` and ``request_time`` come from the row's columns, which hold the same values
    as the info dict in already-parsed form.
    """
    try:
        return _fast_trace(info, spans, assessments, state, request_time)
    except (_Unexpected, KeyError, TypeError, ValueError, binascii.Error) as error:
        logger.debug("reading the stored trace %s the slow way: %r", info.get("trace_id"), error)
    if assessments:
        info = {**info, "assessments": assessments}
    return Trace.from_dict({"info": info, "data": {"spans": spans}})


def _fast_trace(
    info: dict[str, Any],
    spans: list[dict[str, Any]],
    assessments: list[dict[str, Any]],
    state: str,
    request_time: int,
) -> Trace:
    trace_id = info["trace_id"]
    if not isinstance(trace_id, str) or not trace_id:
        raise _Unexpected("trace_id")
    extra = {key: value for key, value in info.items() if key not in _INFO_KEYS}
    duration = info.get("execution_duration_ms")
    trace_info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_dict(info.get("trace_location")),
        request_time=request_time,
        state=_STATES[state],
        request_preview=info.get("request_preview"),
        response_preview=info.get("response_preview"),
        client_request_id=info.get("client_request_id"),
        execution_duration=int(duration) if duration is not None else None,
        trace_metadata=_string_dict(info.get("trace_metadata")),
        tags=_string_dict(info.get("tags")),
        assessments=[Assessment.from_dictionary(item) for item in assessments],
        extra=extra or None,
    )
    quoted_id = f'"{trace_id}"'
    return Trace(trace_info, TraceData([_fast_span(item, trace_id, quoted_id) for item in spans]))


def _fast_span(data: dict[str, Any], trace_id: str, quoted_id: str) -> Span:
    attributes = data["attributes"]
    if type(attributes) is not dict:
        raise _Unexpected("attributes")
    status = data["status"]
    events = data["events"]
    if events:
        events = [SpanEvent(event["name"], int(event["time_unix_nano"]), event["attributes"]) for event in events]
    extra = None
    if len(data) != _SPAN_KEY_COUNT or not _SPAN_KEYS.issuperset(data):
        extra = {key: value for key, value in data.items() if key not in _SPAN_KEYS} or None
    raw_trace_id = attributes.get(SpanAttributeKey.REQUEST_ID)
    parent = data["parent_span_id"]
    start_time = data["start_time_unix_nano"]
    end_time = data["end_time_unix_nano"]
    if type(start_time) is not int or (end_time is not None and type(end_time) is not int):
        raise _Unexpected("times")
    return Span(
        trace_id=trace_id if raw_trace_id is None or raw_trace_id == quoted_id else _span_trace_id(raw_trace_id, trace_id),
        span_id=_hex(data["span_id"]) or "",
        parent_id=_hex(parent) if parent is not None else None,
        name=data["name"],
        start_time_ns=start_time,
        end_time_ns=end_time,
        status=SpanStatus(_STATUS_CODES[status["code"]], status["message"]),
        attributes=attributes,
        events=events,
        otel_trace_id=data["trace_id"],
        extra=extra,
    )


def _span_trace_id(raw: Any, trace_id: str) -> str:
    """Return the trace id the span names in ``mlflow.traceRequestId``, as Span.from_dict does."""
    decoded = decode_attribute(raw)
    return decoded if isinstance(decoded, str) and decoded else trace_id


def _hex(base64_id: str) -> str:
    if type(base64_id) is not str:
        raise _Unexpected("id")
    return binascii.a2b_base64(base64_id).hex()


def _string_dict(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise _Unexpected("map")
    return value


# --- DataFrame rows -----------------------------------------------------------------------


def stored_frame_row(
    info_json: str,
    spans_json: str,
    assessment_texts: list[str],
    state: str,
    request_time: int,
) -> dict[str, Any]:
    """Build one ``search_traces`` DataFrame row straight from the stored JSON texts.

    The cells equal those ``frame.trace_to_row`` gives for the same trace as an entity. The
    ``trace`` cell is spliced together from the stored texts, so nothing is encoded again.
    """
    info = json.loads(info_json)
    spans = json.loads(spans_json)
    assessments = [json.loads(text) for text in assessment_texts]
    if assessment_texts:
        # info_json is a JSON object, so its text ends with "}".
        info_json = info_json[:-1] + ', "assessments": [' + ", ".join(assessment_texts) + "]}"
    root = next((span for span in spans if not span.get("parent_span_id")), None)
    root_attributes = (root or {}).get("attributes") or {}
    return {
        "trace_id": info["trace_id"],
        "trace": '{"info": ' + info_json + ', "data": {"spans": ' + spans_json + "}}",
        "client_request_id": info.get("client_request_id"),
        "state": _STATES[state],
        "request_time": request_time,
        "execution_duration": info.get("execution_duration_ms"),
        "request": _decode_payload(root_attributes.get(SpanAttributeKey.INPUTS)),
        "response": _decode_payload(root_attributes.get(SpanAttributeKey.OUTPUTS)),
        "trace_metadata": info.get("trace_metadata") or {},
        "tags": info.get("tags") or {},
        "spans": spans,
        "assessments": assessments,
    }


def _decode_payload(raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# --- loading query results ----------------------------------------------------------------


def load_assessments(
    connection: sqlite3.Connection, trace_ids: list[str]
) -> dict[str, list[str]]:
    """Return the assessment JSON texts of the given traces, in the order they were first stored."""
    found: dict[str, list[str]] = {}
    for trace_id, text in connection.execute(
        "SELECT trace_id, assessment_json FROM assessments "
        "WHERE trace_id IN (SELECT value FROM json_each(?)) ORDER BY rowid",
        (json.dumps(trace_ids),),
    ):
        found.setdefault(trace_id, []).append(text)
    return found


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of JSON objects are built.

    Each collection walks every live container, so with it running, decoding 10,000 traces
    takes about a third longer. Nothing built here forms reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_traces(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Trace]:
    """Build Trace entities from (trace_id, state, request_time, info_json, spans_json) rows."""
    if not rows:
        return []
    assessments = load_assessments(connection, [row[0] for row in rows])
    traces = []
    with _collector_paused():
        for trace_id, state, request_time, info_json, spans_json in rows:
            texts = assessments.get(trace_id, ())
            try:
                trace = stored_trace(
                    json.loads(info_json), json.loads(spans_json), [json.loads(text) for text in texts], state, request_time
                )
            except TraceFormatError as error:
                logger.error("skipping the stored trace %s, which cannot be read: %s", trace_id, error)
                continue
            traces.append(trace)
    return traces


def load_frame_rows(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Build DataFrame rows from (trace_id, state, request_time, info_json, spans_json) rows."""
    if not rows:
        return []
    assessments = load_assessments(connection, [row[0] for row in rows])
    with _collector_paused():
        return [
            stored_frame_row(info_json, spans_json, assessments.get(trace_id, []), state, request_time)
            for trace_id, state, request_time, info_json, spans_json in rows
        ]
