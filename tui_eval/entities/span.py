"""Spans: one timed step of a trace, in MLflow 3's data model and dict layout.

A span keeps its attributes the way MLflow stores them: every value is JSON text
(``"LLM"`` is stored as the five characters ``"LLM"`` with their quotes). The
``attributes``, ``inputs`` and ``outputs`` properties decode them. Event attributes are
plain values, as OpenTelemetry keeps them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
from enum import Enum
from typing import Any, Callable

from tui_eval.entities import ids
from tui_eval.entities._time import to_int_ns
from tui_eval.errors import TraceFormatError


class SpanType:
    """The span types MLflow 3 defines; any other string is allowed as a custom type."""

    LLM = "LLM"
    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    CHAT_MODEL = "CHAT_MODEL"
    RETRIEVER = "RETRIEVER"
    PARSER = "PARSER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    MEMORY = "MEMORY"
    UNKNOWN = "UNKNOWN"
    WORKFLOW = "WORKFLOW"
    TASK = "TASK"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"


class SpanAttributeKey:
    """Reserved span attribute keys, spelled as MLflow writes them."""

    REQUEST_ID = "mlflow.traceRequestId"
    SPAN_TYPE = "mlflow.spanType"
    INPUTS = "mlflow.spanInputs"
    OUTPUTS = "mlflow.spanOutputs"
    FUNCTION_NAME = "mlflow.spanFunctionName"
    CHAT_USAGE = "mlflow.chat.tokenUsage"
    CHAT_TOOLS = "mlflow.chat.tools"
    MESSAGE_FORMAT = "mlflow.message.format"
    EXPERIMENT_ID = "mlflow.experimentId"
    START_TIME_NS = "mlflow.spanStartTimeNs"
    INTERMEDIATE_OUTPUTS = "mlflow.trace.intermediate_outputs"
    LINKED_PROMPTS = "mlflow.linkedPrompts"
    CHUNK_VALUE = "mlflow.chunk.value"


class SpanStatusCode(str, Enum):
    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


_OTLP_CODE_PREFIX = "STATUS_CODE_"


class SpanStatus:
    """A span's status code and its description (the error message for ERROR)."""

    __slots__ = ("status_code", "description")

    def __init__(self, status_code: SpanStatusCode | str = SpanStatusCode.UNSET, description: str = ""):
        self.status_code = _parse_status_code(status_code)
        self.description = description or ""

    def to_dict(self) -> dict[str, str]:
        return {"code": _OTLP_CODE_PREFIX + self.status_code.value, "message": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SpanStatus:
        if not data:
            return cls()
        return cls(data.get("code", "UNSET"), data.get("message") or data.get("description") or "")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanStatus):
            return NotImplemented
        return (self.status_code, self.description) == (other.status_code, other.description)

    def __repr__(self) -> str:
        return f"SpanStatus(status_code={self.status_code.value!r}, description={self.description!r})"


def _parse_status_code(code: SpanStatusCode | str | int | None) -> SpanStatusCode:
    if isinstance(code, SpanStatusCode):
        return code
    if code is None or code == "":
        return SpanStatusCode.UNSET
    if isinstance(code, int):
        return (SpanStatusCode.UNSET, SpanStatusCode.OK, SpanStatusCode.ERROR)[code]
    text = str(code).upper()
    if text.startswith(_OTLP_CODE_PREFIX):
        text = text[len(_OTLP_CODE_PREFIX):]
    if text == "UNSPECIFIED":
        text = "UNSET"
    try:
        return SpanStatusCode(text)
    except ValueError:
        raise TraceFormatError(
            f"invalid span status code {code!r}: expected OK, ERROR or UNSET "
            "(optionally prefixed STATUS_CODE_)"
        ) from None


class SpanEvent:
    """Something that happened during a span: an exception, a stream chunk, a log line."""

    __slots__ = ("name", "timestamp", "attributes")

    def __init__(self, name: str, timestamp: int | None = None, attributes: dict[str, Any] | None = None):
        self.name = name
        self.timestamp = time.time_ns() if timestamp is None else int(timestamp)
        self.attributes = attributes if attributes is not None else {}

    @classmethod
    def from_exception(cls, exception: BaseException) -> SpanEvent:
        stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        return cls(
            "exception",
            attributes={
                "exception.message": safe_str(exception),
                "exception.type": type(exception).__name__,
                "exception.stacktrace": stack,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "time_unix_nano": self.timestamp, "attributes": self.attributes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpanEvent:
        stamp = data.get("time_unix_nano", data.get("timestamp"))
        return cls(data.get("name", ""), to_int_ns(stamp) or 0, dict(data.get("attributes") or {}))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanEvent):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SpanEvent(name={self.name!r}, timestamp={self.timestamp}, attributes={self.attributes!r})"


def safe_str(value: object) -> str:
    """Return ``str(value)``, or a placeholder when the object's ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - any failure of user code must not escape
        return f"<{type(value).__name__} whose str() failed>"


def decode_attribute(raw: Any) -> Any:
    """Decode one stored attribute value: JSON text, else the raw value; an empty string reads as None."""
    if not isinstance(raw, str):
        return raw
    if raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _default_encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# Keys a span dict may carry that this model reads into fields; any other key is kept
# verbatim and written back, so that an import-then-export loses nothing.
_KNOWN_KEYS = frozenset(
    {
        "trace_id",
        "span_id",
        "parent_span_id",
        "parent_id",
        "name",
        "start_time_unix_nano",
        "end_time_unix_nano",
        "events",
        "status",
        "attributes",
    }
)


class Span:
    """An immutable view of a finished (or imported) span."""

    __slots__ = (
        "_trace_id",
        "_otel_trace_id",
        "span_id",
        "parent_id",
        "name",
        "start_time_ns",
        "end_time_ns",
        "status",
        "_attributes",
        "events",
        "_extra",
        "_decoded",
    )

    def __init__(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        start_time_ns: int,
        end_time_ns: int | None = None,
        status: SpanStatus | None = None,
        attributes: dict[str, Any] | None = None,
        events: list[SpanEvent] | None = None,
        otel_trace_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ):
        self._trace_id = trace_id
        self._otel_trace_id = otel_trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.start_time_ns = start_time_ns
        self.end_time_ns = end_time_ns
        self.status = status if status is not None else SpanStatus()
        self._attributes: dict[str, Any] = attributes if attributes is not None else {}
        self.events: list[SpanEvent] = events if events is not None else []
        self._extra = extra
        self._decoded: dict[str, Any] | None = None

    # --- identity -------------------------------------------------------------------------

    @property
    def trace_id(self) -> str:
        return self._trace_id

    @property
    def request_id(self) -> str:
        return self._trace_id

    # --- attributes -----------------------------------------------------------------------

    @property
    def raw_attributes(self) -> dict[str, Any]:
        """The attributes as stored: JSON text per value."""
        return self._attributes

    @property
    def attributes(self) -> dict[str, Any]:
        """All attributes, each value JSON-decoded."""
        if self._decoded is None:
            self._decoded = {key: decode_attribute(raw) for key, raw in self._attributes.items()}
        return self._decoded

    def get_attribute(self, key: str) -> Any:
        raw = self._attributes.get(key)
        return None if raw is None else decode_attribute(raw)

    @property
    def inputs(self) -> Any:
        return self.get_attribute(SpanAttributeKey.INPUTS)

    @property
    def outputs(self) -> Any:
        return self.get_attribute(SpanAttributeKey.OUTPUTS)

    @property
    def span_type(self) -> str | None:
        return self.get_attribute(SpanAttributeKey.SPAN_TYPE)

    @property
    def duration_ns(self) -> int | None:
        if self.end_time_ns is None:
            return None
        return self.end_time_ns - self.start_time_ns

    # --- dict form ------------------------------------------------------------------------

    def _otel_trace_id_base64(self) -> str:
        if self._otel_trace_id is not None:
            return self._otel_trace_id
        otel_hex = ids.otel_hex_from_trace_id(self._trace_id)
        if otel_hex is None:
            # Trace ids of other forms carry no OpenTelemetry id, so derive a stable one.
            otel_hex = hashlib.md5(self._trace_id.encode("utf-8")).hexdigest()
        self._otel_trace_id = ids.hex_to_base64(otel_hex)
        return self._otel_trace_id

    def to_dict(self) -> dict[str, Any]:
        """Return MLflow 3.6+'s span dict: base64 ids, ``STATUS_CODE_*`` codes, raw attributes."""
        data: dict[str, Any] = {
            "trace_id": self._otel_trace_id_base64(),
            "span_id": ids.hex_to_base64(self.span_id),
            "parent_span_id": ids.hex_to_base64(self.parent_id) if self.parent_id else None,
            "name": self.name,
            "start_time_unix_nano": self.start_time_ns,
            "end_time_unix_nano": self.end_time_ns,
            "events": [event.to_dict() for event in self.events],
            "status": self.status.to_dict(),
            "attributes": dict(self._attributes),
        }
        if self._extra:
            data.update(self._extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], trace_id: str | None = None) -> Span:
        """Read a span dict in any layout MLflow has written.

        Accepted: the 3.6+ form (base64 ids), the 3.5.0 form (hex and ``tr-`` ids, ``"OK"``
        codes), OTLP JSON (times as strings, empty parent id, ``trace_state``) and the V2
        form with its ``context`` key. ``trace_id`` is the fallback when the span lacks the
        ``mlflow.traceRequestId`` attribute.
        """
        if not isinstance(data, dict):
            raise TraceFormatError(f"invalid span: expected a JSON object, got {type(data).__name__}")
        if "context" in data:
            return cls._from_v2_dict(data, trace_id)
        try:
            attributes = dict(data.get("attributes") or {})
            span_id = ids.normalize_span_id(data.get("span_id"))
            parent_raw = data.get("parent_span_id", data.get("parent_id"))
            parent_id = ids.normalize_span_id(parent_raw)
            raw_trace_id = data.get("trace_id")
            otel_hex = otel_b64 = None
            if isinstance(raw_trace_id, str) and raw_trace_id and not raw_trace_id.startswith(ids.TRACE_ID_PREFIX):
                otel_hex = ids.normalize_span_id(raw_trace_id, nbytes=16)
                otel_b64 = ids.hex_to_base64(otel_hex)
            resolved_trace_id = _resolve_trace_id(attributes, trace_id, raw_trace_id, data.get("name"), otel_hex)
            events = [SpanEvent.from_dict(event) for event in data.get("events") or []]
            status = data.get("status")
            if isinstance(status, str):
                status = {"code": status}
            extra = {key: value for key, value in data.items() if key not in _KNOWN_KEYS}
            return cls(
                trace_id=resolved_trace_id,
                span_id=span_id or "",
                parent_id=parent_id,
                name=data.get("name", ""),
                start_time_ns=to_int_ns(data.get("start_time_unix_nano")) or 0,
                end_time_ns=to_int_ns(data.get("end_time_unix_nano")),
                status=SpanStatus.from_dict(status),
                attributes=attributes,
                events=events,
                otel_trace_id=otel_b64,
                extra=extra or None,
            )
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, TraceFormatError):
                raise
            raise TraceFormatError(f"invalid span {data.get('name')!r}: {exc}") from exc

    @classmethod
    def _from_v2_dict(cls, data: dict[str, Any], trace_id: str | None) -> Span:
        context = data.get("context") or {}
        attributes = dict(data.get("attributes") or {})
        try:
            otel_hex = ids.normalize_span_id(context.get("trace_id"), nbytes=16)
            resolved = _resolve_trace_id(attributes, trace_id, None, data.get("name"), otel_hex)
            events = [SpanEvent.from_dict(event) for event in data.get("events") or []]
            return cls(
                trace_id=resolved,
                span_id=ids.normalize_span_id(context.get("span_id")) or "",
                parent_id=ids.normalize_span_id(data.get("parent_id")),
                name=data.get("name", ""),
                start_time_ns=to_int_ns(data.get("start_time")) or 0,
                end_time_ns=to_int_ns(data.get("end_time")),
                status=SpanStatus(data.get("status_code") or "UNSET", data.get("status_message") or ""),
                attributes=attributes,
                events=events,
                otel_trace_id=ids.hex_to_base64(otel_hex) if otel_hex else None,
            )
        except ValueError as exc:
            raise TraceFormatError(f"invalid V2 span {data.get('name')!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, span_id={self.span_id!r}, "
            f"parent_id={self.parent_id!r}, span_type={self.span_type!r})"
        )


def _resolve_trace_id(
    attributes: dict[str, Any],
    fallback: str | None,
    raw_trace_id: Any,
    span_name: Any,
    otel_hex: str | None = None,
) -> str:
    from_attribute = decode_attribute(attributes.get(SpanAttributeKey.REQUEST_ID))
    if isinstance(from_attribute, str) and from_attribute:
        return from_attribute
    if fallback:
        return fallback
    if isinstance(raw_trace_id, str) and raw_trace_id.startswith(ids.TRACE_ID_PREFIX):
        return raw_trace_id
    if otel_hex:
        return ids.TRACE_ID_PREFIX + otel_hex
    raise TraceFormatError(
        f"span {span_name!r} has no {SpanAttributeKey.REQUEST_ID!r} attribute and no trace id "
        "was given: read it through Trace.from_dict, which supplies the trace's id"
    )


class LiveSpan(Span):
    """A span being recorded. The tracing module creates these; setters encode values at once.

    ``_encode`` turns a value into the stored JSON text; the tracing module installs an
    encoder that never raises. ``_on_end`` is called once when the span ends.
    """

    __slots__ = ("_on_end", "_ended")

    _encode: Callable[[Any], str] = staticmethod(_default_encode)

    def __init__(
        self,
        *,
        trace_id: str,
        name: str,
        span_type: str = SpanType.UNKNOWN,
        parent_id: str | None = None,
        span_id: str | None = None,
        start_time_ns: int | None = None,
        on_end: Callable[[LiveSpan], None] | None = None,
    ):
        encode = self._encode
        super().__init__(
            trace_id=trace_id,
            span_id=span_id or ids.new_span_id(),
            parent_id=parent_id,
            name=name,
            start_time_ns=time.time_ns() if start_time_ns is None else start_time_ns,
            attributes={
                SpanAttributeKey.REQUEST_ID: encode(trace_id),
                SpanAttributeKey.SPAN_TYPE: encode(span_type),
            },
            extra={"links": []},
        )
        self._on_end = on_end
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def set_attribute(self, key: str, value: Any) -> None:
        self._attributes[key] = self._encode(value)
        self._decoded = None

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        encode = self._encode
        for key, value in attributes.items():
            self._attributes[key] = encode(value)
        self._decoded = None

    def set_inputs(self, inputs: Any) -> None:
        self.set_attribute(SpanAttributeKey.INPUTS, inputs)

    def set_outputs(self, outputs: Any) -> None:
        self.set_attribute(SpanAttributeKey.OUTPUTS, outputs)

    def set_span_type(self, span_type: str) -> None:
        self.set_attribute(SpanAttributeKey.SPAN_TYPE, str(span_type))

    def set_status(self, status: SpanStatus | SpanStatusCode | str) -> None:
        if isinstance(status, SpanStatus):
            self.status = status
        else:
            self.status = SpanStatus(status)

    def add_event(self, event: SpanEvent) -> None:
        self.events.append(event)

    def record_exception(self, exception: BaseException | str) -> None:
        """Add an ``exception`` event and set the status to ERROR with ``"Type: message"``."""
        if isinstance(exception, BaseException):
            self.events.append(SpanEvent.from_exception(exception))
            self.status = SpanStatus(SpanStatusCode.ERROR, f"{type(exception).__name__}: {safe_str(exception)}")
        else:
            self.events.append(SpanEvent("exception", attributes={"exception.message": str(exception)}))
            self.status = SpanStatus(SpanStatusCode.ERROR, str(exception))

    def end(
        self,
        outputs: Any = None,
        attributes: dict[str, Any] | None = None,
        status: SpanStatus | SpanStatusCode | str | None = None,
        end_time_ns: int | None = None,
    ) -> None:
        """End the span; the status becomes OK unless it is already ERROR. A second call is ignored."""
        if self._ended:
            return
        if outputs is not None:
            self.set_outputs(outputs)
        if attributes:
            self.set_attributes(attributes)
        if status is not None:
            self.set_status(status)
        if self.status.status_code != SpanStatusCode.ERROR:
            self.status = SpanStatus(SpanStatusCode.OK, self.status.description)
        self.end_time_ns = time.time_ns() if end_time_ns is None else end_time_ns
        self._ended = True
        if self._on_end is not None:
            self._on_end(self)

    def to_immutable_span(self) -> Span:
        return Span(
            trace_id=self._trace_id,
            span_id=self.span_id,
            parent_id=self.parent_id,
            name=self.name,
            start_time_ns=self.start_time_ns,
            end_time_ns=self.end_time_ns,
            status=self.status,
            attributes=dict(self._attributes),
            events=list(self.events),
            otel_trace_id=self._otel_trace_id,
            extra=dict(self._extra) if self._extra else None,
        )


def span_name_matches(name_filter: str | re.Pattern[str], name: str) -> bool:
    if isinstance(name_filter, re.Pattern):
        return name_filter.search(name) is not None
    return name == name_filter
