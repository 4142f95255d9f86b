"""Trace and TraceData: a trace's spans and its summary, with MLflow 3's JSON layout."""

from __future__ import annotations

import json
import re
from typing import Any

from tui_eval.entities.assessment import Assessment, Expectation, Feedback
from tui_eval.entities.span import Span, SpanAttributeKey, span_name_matches
from tui_eval.entities.trace_info import TraceInfo
from tui_eval.errors import InvalidParameterError, TraceFormatError


class TraceData:
    """A trace's spans, in start order with the root first."""

    def __init__(self, spans: list[Span] | None = None, extra: dict[str, Any] | None = None):
        self.spans: list[Span] = spans if spans is not None else []
        self._extra = extra

    @property
    def root_span(self) -> Span | None:
        for span in self.spans:
            if span.parent_id is None:
                return span
        return None

    @property
    def request(self) -> str | None:
        """The root span's inputs as stored (JSON text)."""
        root = self.root_span
        return root.raw_attributes.get(SpanAttributeKey.INPUTS) if root else None

    @property
    def response(self) -> str | None:
        """The root span's outputs as stored (JSON text)."""
        root = self.root_span
        return root.raw_attributes.get(SpanAttributeKey.OUTPUTS) if root else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"spans": [span.to_dict() for span in self.spans]}
        if self._extra:
            data.update(self._extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, trace_id: str | None = None) -> TraceData:
        if not data:
            return cls([])
        if not isinstance(data, dict):
            raise TraceFormatError(f"invalid trace data: expected a JSON object, got {type(data).__name__}")
        spans = [Span.from_dict(item, trace_id=trace_id) for item in data.get("spans") or []]
        # MLflow 2 wrote "request"/"response" here; they repeat the root span and are dropped.
        extra = {key: value for key, value in data.items() if key not in ("spans", "request", "response")}
        return cls(spans, extra or None)


class Trace:
    """A recorded run of an app: ``info`` (summary and assessments) and ``data`` (spans)."""

    def __init__(self, info: TraceInfo, data: TraceData | None = None):
        self.info = info
        self.data = data if data is not None else TraceData()

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info.to_dict(), "data": self.data.to_dict()}

    def to_json(self, pretty: bool = False, ensure_ascii: bool = False) -> str:
        return json.dumps(self.to_dict(), indent=2 if pretty else None, ensure_ascii=ensure_ascii)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        if not isinstance(data, dict) or "info" not in data:
            shown = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:8]}"
            raise TraceFormatError(
                f"cannot read a trace from {shown}: expected an object with 'info' and 'data' keys "
                "(MLflow's Trace.to_json layout)"
            )
        info = TraceInfo.from_dict(data["info"])
        trace_data = TraceData.from_dict(data.get("data"), trace_id=info.trace_id)
        return cls(info, trace_data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Trace:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TraceFormatError(f"cannot read a trace: the text is not valid JSON ({exc})") from exc
        return cls.from_dict(data)

    # --- queries --------------------------------------------------------------------------

    def search_spans(
        self,
        span_type: str | None = None,
        name: str | re.Pattern[str] | None = None,
        span_id: str | None = None,
    ) -> list[Span]:
        """Return the spans matching every given filter, in span order.

        ``name`` as a string matches exactly; as a compiled pattern it uses ``search``.
        """
        if name is not None and not isinstance(name, (str, re.Pattern)):
            raise InvalidParameterError(
                f"Invalid type for 'name': expected str or re.Pattern, got {type(name).__name__}"
            )
        if span_type is not None and not isinstance(span_type, str):
            raise InvalidParameterError(
                f"Invalid type for 'span_type': expected str or SpanType, got {type(span_type).__name__}"
            )
        found = []
        for span in self.data.spans:
            if span_type is not None and span.span_type != span_type:
                continue
            if name is not None and not span_name_matches(name, span.name):
                continue
            if span_id is not None and span.span_id != span_id:
                continue
            found.append(span)
        return found

    def search_assessments(
        self,
        name: str | None = None,
        *,
        span_id: str | None = None,
        all: bool = False,  # noqa: A002 - MLflow's parameter name
        type: str | None = None,  # noqa: A002 - MLflow's parameter name
    ) -> list[Assessment]:
        """Return the assessments matching the filters; overridden ones (valid=False) only with all=True."""
        if type not in (None, "feedback", "expectation"):
            raise InvalidParameterError(f"invalid assessment type {type!r}: expected 'feedback' or 'expectation'")
        wanted = {"feedback": Feedback, "expectation": Expectation}.get(type or "")
        found = []
        for assessment in self.info.assessments:
            if name is not None and assessment.name != name:
                continue
            if span_id is not None and assessment.span_id != span_id:
                continue
            if not all and assessment.valid is False:
                continue
            if wanted is not None and not isinstance(assessment, wanted):
                continue
            found.append(assessment)
        return found

    # --- DataFrame form -------------------------------------------------------------------

    @staticmethod
    def pandas_dataframe_columns() -> list[str]:
        return [
            "trace_id",
            "trace",
            "client_request_id",
            "state",
            "request_time",
            "execution_duration",
            "request",
            "response",
            "trace_metadata",
            "tags",
            "spans",
            "assessments",
        ]

    def to_pandas_dataframe_row(self) -> dict[str, Any]:
        info = self.info
        return {
            "trace_id": info.trace_id,
            "trace": self.to_json(),
            "client_request_id": info.client_request_id,
            "state": info.state,
            "request_time": info.request_time,
            "execution_duration": info.execution_duration,
            "request": _decode_payload(self.data.request),
            "response": _decode_payload(self.data.response),
            "trace_metadata": dict(info.trace_metadata),
            "tags": dict(info.tags),
            "spans": [span.to_dict() for span in self.data.spans],
            "assessments": [assessment.to_dictionary() for assessment in info.assessments],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Trace(trace_id={self.info.trace_id!r}, spans={len(self.data.spans)})"


def _decode_payload(raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
