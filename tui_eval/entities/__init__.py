"""The trace data model, compatible with MLflow 3's entities and their dict and JSON forms.

This package depends on the standard library only.
"""

from tui_eval.entities.assessment import (
    DEFAULT_FEEDBACK_NAME,
    Assessment,
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    ExpectationValue,
    Feedback,
    FeedbackValue,
)
from tui_eval.entities.span import (
    LiveSpan,
    Span,
    SpanAttributeKey,
    SpanEvent,
    SpanStatus,
    SpanStatusCode,
    SpanType,
)
from tui_eval.entities.trace import Trace, TraceData
from tui_eval.entities.trace_info import TraceInfo, TraceLocation
from tui_eval.entities.trace_state import TraceState

__all__ = [
    "DEFAULT_FEEDBACK_NAME",
    "Assessment",
    "AssessmentError",
    "AssessmentSource",
    "AssessmentSourceType",
    "Expectation",
    "ExpectationValue",
    "Feedback",
    "FeedbackValue",
    "LiveSpan",
    "Span",
    "SpanAttributeKey",
    "SpanEvent",
    "SpanStatus",
    "SpanStatusCode",
    "SpanType",
    "Trace",
    "TraceData",
    "TraceInfo",
    "TraceLocation",
    "TraceState",
]
