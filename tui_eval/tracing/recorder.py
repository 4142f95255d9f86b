"""Span bookkeeping: the active span, the traces in progress, and the trace built when a root ends.

The active span lives in a context variable, so nesting follows the code that runs: a
span started inside another is its child. This also works in asyncio tasks, which copy
the context when created, and in threads whose callable runs through
`contextvars.copy_context().run`.

A root span opens a trace: the store gets an IN_PROGRESS row at once, so a process that
dies mid-trace leaves a visible trace behind. When the root ends, the whole trace (spans,
previews, metadata, assessments logged meanwhile) is written in one `Store.log_trace` call.
Store failures are logged and never raised into the traced code.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import os
import random
import threading
import time
import traceback
from typing import Any

from tui_eval.entities import (
    Assessment,
    LiveSpan,
    Span,
    SpanAttributeKey,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from tui_eval.entities import ids
from tui_eval.tracing import provider, summary
from tui_eval.tracing.encoding import clean_text, dump_value

logger = logging.getLogger(__name__)

_getrandbits = random.getrandbits

# Finished traces kept in memory, newest last, so that `get_trace` still finds a trace the
# store could not take.
RECENT_TRACES_KEPT = 128
# At most one warning about failing store writes per this many seconds; the rest go to debug.
STORE_WARNING_INTERVAL_S = 10.0


class TracedSpan(LiveSpan):
    """A live span recorded by tracing: values are encoded with `dump_value`, which catches every Exception."""

    __slots__ = ("_record",)

    _encode = staticmethod(dump_value)

    def __init__(self, record: TraceRecord | None, name: str, span_type: str, parent_id: str | None):
        # Sets every slot of Span and LiveSpan directly instead of calling LiveSpan.__init__:
        # the two nested keyword-heavy constructors cost about 4 us, a fifth of the budget
        # for a whole span. tests/test_tracing.py checks that no slot is left unset.
        self._trace_id = record.trace_id if record is not None else ""
        self._otel_trace_id = None
        self.span_id = _new_span_id()
        self.parent_id = parent_id
        self.name = name
        self.start_time_ns = time.time_ns()
        self.end_time_ns = None
        self.status = _UNSET_STATUS
        self._attributes = {
            SpanAttributeKey.REQUEST_ID: record.trace_id_json if record is not None else '""',
            SpanAttributeKey.SPAN_TYPE: _SPAN_TYPE_JSON.get(span_type) or dump_value(span_type),
        }
        self.events = []
        self._extra = {"links": []}
        self._decoded = None
        self._on_end = _span_ended
        self._ended = False
        self._record = record


# Shared by every new span: a status is replaced, never changed in place (LiveSpan.set_status
# and LiveSpan.end assign a new SpanStatus).
_UNSET_STATUS = SpanStatus()
_SPAN_TYPE_JSON = {
    value: dump_value(value) for name, value in vars(SpanType).items() if not name.startswith("_")
}


def _new_span_id() -> str:
    """Return 16 random hex digits for a span id (see `_draw_id` for the values avoided)."""
    # `_draw_id(64)` inlined: this runs once per span.
    value = _getrandbits(64)
    while not value or (value >> 52) in _BASE64_0X_PREFIXES:
        value = _getrandbits(64)
    return "%016x" % value


def _new_trace_id() -> str:
    return ids.TRACE_ID_PREFIX + "%032x" % _draw_id(128)


# The top 12 bits of an id whose base64 form starts with "0x" or "0X" ("0" is base64 digit
# 52, "x" 49 and "X" 23).
_BASE64_0X_PREFIXES = frozenset({52 << 6 | 49, 52 << 6 | 23})


def _draw_id(bits: int) -> int:
    """Return a random id of `bits` bits, never zero and never one whose base64 starts with "0x".

    OpenTelemetry reserves the zero id. NOTE: ids.normalize_span_id reads a base64 id that
    starts with "0x" as hex. That corrupts about one id in 4096 on a store round trip, so
    such ids are drawn again until the reader is fixed. `random` is reseeded in a forked
    child, so parent and child never repeat ids (ids must be unique, not unpredictable).
    """
    shift = bits - 12
    while True:
        value = _getrandbits(bits)
        if value and (value >> shift) not in _BASE64_0X_PREFIXES:
            return value


class NoOpSpan:
    """Stands in for a span when tracing is off or a span could not be started; every call is ignored."""

    trace_id = None
    request_id = None
    span_id = None
    parent_id = None
    name = None
    start_time_ns = None
    end_time_ns = None
    inputs = None
    outputs = None
    span_type = None
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []
    ended = False

    @property
    def status(self) -> SpanStatus:
        return SpanStatus()

    def get_attribute(self, key: str) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        pass

    def set_inputs(self, inputs: Any) -> None:
        pass

    def set_outputs(self, outputs: Any) -> None:
        pass

    def set_span_type(self, span_type: str) -> None:
        pass

    def set_status(self, status: Any) -> None:
        pass

    def add_event(self, event: SpanEvent) -> None:
        pass

    def record_exception(self, exception: BaseException | str) -> None:
        pass

    def end(self, outputs: Any = None, attributes: Any = None, status: Any = None, end_time_ns: int | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return "NoOpSpan()"


class TraceRecord:
    """A trace whose root span has not ended yet, with what the user set on it meanwhile."""

    __slots__ = (
        "trace_id",
        "trace_id_json",
        "root",
        "spans",
        "experiment_id",
        "run_id",
        "finished",
        "tags",
        "metadata",
        "client_request_id",
        "request_preview",
        "response_preview",
        "state",
        "assessments",
        "late_span_reported",
    )

    def __init__(self, trace_id: str, experiment_id: str, run_id: str | None):
        self.trace_id = trace_id
        self.trace_id_json = dump_value(trace_id)
        self.root: TracedSpan | None = None
        self.spans: list[TracedSpan] = []
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.finished = False
        self.tags: dict[str, str] = {}
        self.metadata: dict[str, str] = {}
        self.client_request_id: str | None = None
        self.request_preview: str | None = None
        self.response_preview: str | None = None
        self.state: TraceState | None = None
        self.assessments: list[Assessment] = []
        self.late_span_reported = False


active_span: contextvars.ContextVar[TracedSpan | None] = contextvars.ContextVar("tui_eval_active_span", default=None)

_registry_lock = threading.Lock()
_in_progress: dict[str, TraceRecord] = {}
_recent: collections.OrderedDict[str, Trace] = collections.OrderedDict()
_last_trace_id: str | None = None
_thread_state = threading.local()


# --- starting and ending spans ------------------------------------------------------------


def begin_span(name: str, span_type: str = SpanType.UNKNOWN) -> TracedSpan:
    """Start a span as a child of the active span, or as the root of a new trace.

    The caller makes it the active span (or not) and must end it.
    """
    name = clean_text(name) if isinstance(name, str) else str(name)
    parent = active_span.get()
    if parent is None:
        return _begin_root(name, span_type)
    record = parent._record
    span = TracedSpan(record, name, span_type, parent.span_id)
    # A span whose trace already finished is not appended: it is reported when it ends.
    if not record.finished:
        record.spans.append(span)
    return span


def _begin_root(name: str, span_type: str) -> TracedSpan:
    trace_id = _new_trace_id()
    run_id = provider.get_active_run_id()
    experiment_id = _experiment_id()
    record = TraceRecord(trace_id, experiment_id, run_id)
    span = TracedSpan(record, name, span_type, None)
    record.root = span
    record.spans.append(span)
    with _registry_lock:
        _in_progress[trace_id] = record

    metadata = {summary.SCHEMA_VERSION_KEY: summary.SCHEMA_VERSION}
    if run_id:
        metadata[summary.SOURCE_RUN_KEY] = run_id
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=span.start_time_ns // 1_000_000,
        state=TraceState.IN_PROGRESS,
        trace_metadata=metadata,
        tags={summary.TRACE_NAME_TAG: name},
    )
    try:
        provider.get_store().begin_trace(info, os.getpid())
    except Exception as exc:  # noqa: BLE001 - a store failure must not reach the traced code
        _report_store_failure("record the start of trace", trace_id, exc)
    return span


def _experiment_id() -> str:
    try:
        return provider.get_experiment_id()
    except Exception as exc:  # noqa: BLE001 - a store failure must not reach the traced code
        _report_store_failure("resolve the experiment of a new trace", None, exc)
        return provider.DEFAULT_EXPERIMENT_ID


def _span_ended(span: LiveSpan) -> None:
    record = span._record  # type: ignore[attr-defined]
    if span is record.root:
        _finish_trace(record)
    elif record.finished and not record.late_span_reported:
        record.late_span_reported = True
        if span in record.spans:
            kept = "the stored trace keeps it as it was when the root ended"
        else:
            kept = "it started after the root ended, so it is not stored"
        logger.warning(
            "Span %r ended after the root span of trace %s had ended: %s. End child spans "
            "(and finish traced generators and threads) before their root span ends.",
            span.name,
            record.trace_id,
            kept,
        )


def set_active(span: TracedSpan) -> contextvars.Token:
    return active_span.set(span)


def reset_active(token: contextvars.Token) -> None:
    """Restore the active span saved in `token`, also when the context changed in between."""
    try:
        active_span.reset(token)
    except ValueError:
        # The span was ended in another context than the one that started it (for example
        # an async generator resumed by another task): put the previous span back by value.
        previous = token.old_value
        active_span.set(None if previous is contextvars.Token.MISSING else previous)


def exception_event(exception: BaseException) -> tuple[SpanEvent, str]:
    """Return the ``exception`` event for `exception` and the ``"Type: message"`` status text."""
    type_name = type(exception).__name__
    message = _safe_str(exception)
    try:
        stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    except Exception:  # noqa: BLE001 - formatting runs user __str__ methods
        stack = f"{type_name}: {message}"
    event = SpanEvent(
        "exception",
        attributes={
            "exception.message": message,
            "exception.type": type_name,
            "exception.stacktrace": stack,
        },
    )
    return event, f"{type_name}: {message}"


def record_exception(span: LiveSpan, exception: BaseException) -> None:
    """Add an exception event and an ERROR status to `span`, even when `str(exception)` raises."""
    event, description = exception_event(exception)
    span.add_event(event)
    span.set_status(SpanStatus(SpanStatusCode.ERROR, description))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a user __str__ may raise anything
        return f"<{type(value).__name__} with an unprintable message>"


# --- finishing a trace --------------------------------------------------------------------


def _finish_trace(record: TraceRecord) -> None:
    global _last_trace_id
    with _registry_lock:
        record.finished = True
        _in_progress.pop(record.trace_id, None)
        spans = list(record.spans)
        assessments = list(record.assessments)
    try:
        trace = build_trace(record, spans, assessments)
    except Exception:  # noqa: BLE001 - a bug here must not reach the traced code
        logger.exception("Could not build trace %s from its spans; it is not stored", record.trace_id)
        return

    try:
        provider.get_store().log_trace(trace)
    except Exception as exc:  # noqa: BLE001 - a store failure must not reach the traced code
        _report_store_failure("store trace", record.trace_id, exc)

    with _registry_lock:
        _recent[record.trace_id] = trace
        while len(_recent) > RECENT_TRACES_KEPT:
            _recent.popitem(last=False)
        _last_trace_id = record.trace_id
    _thread_state.last_trace_id = record.trace_id


def build_trace(record: TraceRecord, spans: list[TracedSpan], assessments: list[Assessment]) -> Trace:
    """Build the finished trace: immutable span copies, then the summary computed from them."""
    root = record.root
    end_ns = root.end_time_ns if root.end_time_ns is not None else time.time_ns()
    copies = [_finished_copy(span, end_ns) for span in spans]
    root_copy = copies[0]

    metadata = summary.trace_metadata(root_copy, copies, record.run_id)
    metadata.update(record.metadata)
    tags = {summary.TRACE_NAME_TAG: root_copy.name}
    tags.update(record.tags)

    request_preview = record.request_preview
    if request_preview is None:
        request_preview = summary.preview(root_copy.raw_attributes.get("mlflow.spanInputs"), "user")
    response_preview = record.response_preview
    if response_preview is None:
        response_preview = summary.preview(root_copy.raw_attributes.get("mlflow.spanOutputs"), "assistant")

    info = TraceInfo(
        trace_id=record.trace_id,
        trace_location=TraceLocation.from_experiment_id(record.experiment_id),
        request_time=root.start_time_ns // 1_000_000,
        state=record.state if record.state is not None else _state_from_status(root_copy.status),
        request_preview=request_preview,
        response_preview=response_preview,
        client_request_id=record.client_request_id,
        execution_duration=(end_ns - root.start_time_ns) // 1_000_000,
        trace_metadata=metadata,
        tags=tags,
        assessments=assessments,
    )
    return Trace(info, TraceData(copies))


def _state_from_status(status: SpanStatus) -> TraceState:
    if status.status_code == SpanStatusCode.OK:
        return TraceState.OK
    if status.status_code == SpanStatusCode.ERROR:
        return TraceState.ERROR
    return TraceState.STATE_UNSPECIFIED


def _finished_copy(span: TracedSpan, root_end_ns: int) -> Span:
    copy = span.to_immutable_span()
    if not span.ended:
        # Still open when the root ended (a thread or generator outliving its caller):
        # stored as ending with the root, status left UNSET.
        copy.end_time_ns = root_end_ns
        logger.warning(
            "Span %r of trace %s was still open when its root span ended; it is stored as "
            "ending with the root, with status UNSET",
            span.name,
            span.trace_id,
        )
    _make_storable(copy)
    return copy


def _make_storable(span: Span) -> None:
    """Clean text that came from user code without going through `dump_value`."""
    if not span.name.isascii():
        span.name = clean_text(span.name)
    attributes = span.raw_attributes
    if not all(key.isascii() for key in attributes):
        cleaned = {clean_text(key): value for key, value in attributes.items()}
        attributes.clear()
        attributes.update(cleaned)
    for event in span.events:
        if not isinstance(event.name, str) or not event.name.isascii():
            event.name = clean_text(str(event.name))
        if event.attributes:
            event.attributes = {
                clean_text(str(key)): _event_attribute(value) for key, value in event.attributes.items()
            }


_EVENT_SCALARS = (str, bool, int, float)


def _event_attribute(value: Any) -> Any:
    """Keep OpenTelemetry attribute values (scalars and lists of them); anything else becomes JSON text."""
    value_type = type(value)
    if value_type is str:
        return clean_text(value)
    if value_type in (bool, int, float):
        return value
    if isinstance(value, (list, tuple)) and all(type(item) in _EVENT_SCALARS for item in value):
        return [clean_text(item) if type(item) is str else item for item in value]
    return dump_value(value)


# --- queries ------------------------------------------------------------------------------


def get_record(trace_id: str) -> TraceRecord | None:
    with _registry_lock:
        return _in_progress.get(trace_id)


def add_assessment_if_in_progress(trace_id: str, assessment: Assessment) -> bool:
    """Attach `assessment` to the trace if its root has not ended; it is then stored with the trace."""
    with _registry_lock:
        record = _in_progress.get(trace_id)
        if record is None:
            return False
        record.assessments.append(assessment)
        return True


def get_recent_trace(trace_id: str) -> Trace | None:
    with _registry_lock:
        return _recent.get(trace_id)


def get_last_trace_id(thread_local: bool = False) -> str | None:
    if thread_local:
        return getattr(_thread_state, "last_trace_id", None)
    return _last_trace_id


def clear() -> None:
    """Forget traces in progress, recent traces and the last trace id (for tests)."""
    global _last_trace_id
    with _registry_lock:
        _in_progress.clear()
        _recent.clear()
        _last_trace_id = None
    _thread_state.__dict__.clear()
    with _failure_lock:
        _failure_log.clear()


# --- store failures -----------------------------------------------------------------------

_failure_lock = threading.Lock()
# Per store location: when the last warning was logged, and how many failures went to debug since.
_failure_log: dict[str, tuple[float, int]] = {}


def _report_store_failure(action: str, trace_id: str | None, exc: BaseException) -> None:
    """Log a failed store call: per store, a warning at most every `STORE_WARNING_INTERVAL_S`, debug otherwise."""
    location = _store_location()
    now = time.monotonic()
    with _failure_lock:
        last_warning, suppressed = _failure_log.get(location, (-STORE_WARNING_INTERVAL_S, 0))
        due = now - last_warning >= STORE_WARNING_INTERVAL_S
        _failure_log[location] = (now, 0) if due else (last_warning, suppressed + 1)
    where = f" {trace_id}" if trace_id else ""
    if due:
        extra = f" ({suppressed} similar failures not shown)" if suppressed else ""
        logger.warning(
            "Could not %s%s in the trace store %s: %s%s. Tracing goes on; check the store path "
            "(set_tracking_uri or TUI_EVAL_STORE).",
            action,
            where,
            location,
            exc,
            extra,
            exc_info=exc,
        )
    else:
        logger.debug("Could not %s%s: %s", action, where, exc)


def _store_location() -> str:
    try:
        return str(provider.get_store_path())
    except Exception:  # noqa: BLE001 - only used inside a log message
        return "(unknown)"
