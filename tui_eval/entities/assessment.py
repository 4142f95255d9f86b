"""Assessments attached to a trace: Feedback (a score) and Expectation (ground truth).

The dict form is MLflow 3's (``Assessment.to_dictionary``): proto field names, RFC 3339
times, and the value under a ``feedback`` or ``expectation`` key.
"""

from __future__ import annotations

import json
import traceback
import warnings
from typing import Any

from tui_eval.entities._time import ms_to_rfc3339, now_ms, rfc3339_to_ms
from tui_eval.errors import InvalidParameterError, TraceFormatError

DEFAULT_FEEDBACK_NAME = "feedback"
SOURCE_RUN_ID_KEY = "mlflow.assessment.sourceRunId"


class AssessmentSourceType:
    SOURCE_TYPE_UNSPECIFIED = "SOURCE_TYPE_UNSPECIFIED"
    LLM_JUDGE = "LLM_JUDGE"
    HUMAN = "HUMAN"
    CODE = "CODE"
    AI_JUDGE = "AI_JUDGE"  # Deprecated spelling of LLM_JUDGE.

    _VALID = ("SOURCE_TYPE_UNSPECIFIED", "LLM_JUDGE", "HUMAN", "CODE")

    @classmethod
    def normalize(cls, source_type: str) -> str:
        text = str(source_type).upper()
        if text == cls.AI_JUDGE:
            warnings.warn("AI_JUDGE is deprecated; use LLM_JUDGE", DeprecationWarning, stacklevel=3)
            return cls.LLM_JUDGE
        if text not in cls._VALID:
            raise InvalidParameterError(
                f"invalid assessment source type {source_type!r}: expected one of {', '.join(cls._VALID)}"
            )
        return text


class AssessmentSource:
    """Who produced an assessment: a person (HUMAN), an LLM judge or code."""

    __slots__ = ("source_type", "source_id")

    def __init__(self, source_type: str, source_id: str = "default"):
        self.source_type = AssessmentSourceType.normalize(source_type)
        self.source_id = source_id if source_id is not None else "default"

    def to_dictionary(self) -> dict[str, str]:
        return {"source_type": self.source_type, "source_id": self.source_id}

    @classmethod
    def from_dictionary(cls, data: dict[str, Any] | None) -> AssessmentSource:
        if not data:
            return cls(AssessmentSourceType.SOURCE_TYPE_UNSPECIFIED)
        return cls(data.get("source_type") or "SOURCE_TYPE_UNSPECIFIED", data.get("source_id") or "default")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AssessmentSource):
            return NotImplemented
        return (self.source_type, self.source_id) == (other.source_type, other.source_id)

    def __hash__(self) -> int:
        return hash((self.source_type, self.source_id))

    def __repr__(self) -> str:
        return f"AssessmentSource(source_type={self.source_type!r}, source_id={self.source_id!r})"


class AssessmentError:
    """Why an assessment has no value: an error code, a message and optionally a stack trace."""

    __slots__ = ("error_code", "error_message", "stack_trace")

    def __init__(self, error_code: str, error_message: str | None = None, stack_trace: str | None = None):
        self.error_code = error_code
        self.error_message = error_message
        self.stack_trace = stack_trace

    @classmethod
    def from_exception(cls, exception: BaseException) -> AssessmentError:
        stack = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        return cls(type(exception).__name__, str(exception), stack)

    def to_dictionary(self) -> dict[str, str]:
        data = {"error_code": self.error_code}
        if self.error_message is not None:
            data["error_message"] = self.error_message
        if self.stack_trace is not None:
            data["stack_trace"] = self.stack_trace
        return data

    @classmethod
    def from_dictionary(cls, data: dict[str, Any]) -> AssessmentError:
        return cls(data.get("error_code") or "UNKNOWN", data.get("error_message"), data.get("stack_trace"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AssessmentError):
            return NotImplemented
        return self.to_dictionary() == other.to_dictionary()

    def __repr__(self) -> str:
        return f"AssessmentError(error_code={self.error_code!r}, error_message={self.error_message!r})"


class FeedbackValue:
    """The ``feedback`` part of an assessment: its value and error."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: AssessmentError | None = None):
        self.value = value
        self.error = error


class ExpectationValue:
    """The ``expectation`` part of an assessment."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class Assessment:
    """Fields shared by Feedback and Expectation."""

    __slots__ = (
        "name",
        "source",
        "trace_id",
        "rationale",
        "metadata",
        "span_id",
        "create_time_ms",
        "last_update_time_ms",
        "assessment_id",
        "overrides",
        "valid",
    )

    kind = "assessment"

    def _init_common(
        self,
        name: str,
        source: AssessmentSource,
        trace_id: str | None,
        metadata: dict[str, str] | None,
        span_id: str | None,
        create_time_ms: int | None,
        last_update_time_ms: int | None,
        rationale: str | None,
        overrides: str | None,
        valid: bool | None,
        assessment_id: str | None,
    ) -> None:
        stamp = now_ms() if create_time_ms is None else create_time_ms
        self.name = name
        self.source = source
        self.trace_id = trace_id
        self.metadata = metadata
        self.span_id = span_id
        self.create_time_ms = stamp
        self.last_update_time_ms = stamp if last_update_time_ms is None else last_update_time_ms
        self.rationale = rationale
        self.overrides = overrides
        self.valid = valid
        self.assessment_id = assessment_id

    @property
    def run_id(self) -> str | None:
        """The evaluation run that wrote this assessment (metadata ``mlflow.assessment.sourceRunId``)."""
        if self.metadata:
            return self.metadata.get(SOURCE_RUN_ID_KEY)
        return None

    @run_id.setter
    def run_id(self, run_id: str | None) -> None:
        metadata = dict(self.metadata or {})
        if run_id is None:
            metadata.pop(SOURCE_RUN_ID_KEY, None)
        else:
            metadata[SOURCE_RUN_ID_KEY] = run_id
        self.metadata = metadata or None

    def _value_dictionary(self) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def to_dictionary(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.assessment_id is not None:
            data["assessment_id"] = self.assessment_id
        data["assessment_name"] = self.name
        if self.trace_id is not None:
            data["trace_id"] = self.trace_id
        if self.span_id is not None:
            data["span_id"] = self.span_id
        data["source"] = self.source.to_dictionary()
        data["create_time"] = ms_to_rfc3339(self.create_time_ms)
        data["last_update_time"] = ms_to_rfc3339(self.last_update_time_ms)
        key, value = self._value_dictionary()
        data[key] = value
        if self.rationale is not None:
            data["rationale"] = self.rationale
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.overrides is not None:
            data["overrides"] = self.overrides
        if self.valid is not None:
            data["valid"] = self.valid
        return data

    @staticmethod
    def from_dictionary(data: dict[str, Any]) -> Feedback | Expectation:
        """Read an assessment dict; the ``feedback`` or ``expectation`` key decides the class."""
        if not isinstance(data, dict):
            raise TraceFormatError(f"invalid assessment: expected a JSON object, got {type(data).__name__}")
        name = data.get("assessment_name", data.get("name"))
        if not name:
            raise TraceFormatError(f"invalid assessment {data.get('assessment_id')!r}: it has no assessment_name")
        common = {
            "source": AssessmentSource.from_dictionary(data.get("source")),
            "trace_id": data.get("trace_id"),
            "metadata": dict(data["metadata"]) if data.get("metadata") else None,
            "span_id": data.get("span_id"),
            "create_time_ms": _read_time(data.get("create_time", data.get("create_time_ms"))),
            "last_update_time_ms": _read_time(data.get("last_update_time", data.get("last_update_time_ms"))),
            "assessment_id": data.get("assessment_id"),
        }
        if "feedback" in data:
            feedback = data["feedback"] or {}
            error = feedback.get("error")
            return Feedback(
                name=name,
                value=feedback.get("value"),
                error=AssessmentError.from_dictionary(error) if error else None,
                rationale=data.get("rationale"),
                overrides=data.get("overrides"),
                valid=data.get("valid"),
                _allow_empty=True,
                **common,
            )
        if "expectation" in data:
            expectation = data["expectation"] or {}
            if "serialized_value" in expectation:
                serialized = expectation["serialized_value"] or {}
                try:
                    value = json.loads(serialized.get("value", "null"))
                except ValueError as exc:
                    raise TraceFormatError(
                        f"invalid expectation {name!r}: serialized_value is not valid JSON ({exc})"
                    ) from exc
            else:
                value = expectation.get("value")
            result = Expectation(name=name, value=value, _allow_empty=True, **common)
            result.rationale = data.get("rationale")
            result.overrides = data.get("overrides")
            result.valid = data.get("valid")
            return result
        raise TraceFormatError(
            f"invalid assessment {name!r}: it has neither a 'feedback' nor an 'expectation' key"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Assessment):
            return NotImplemented
        return type(self) is type(other) and self.to_dictionary() == other.to_dictionary()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, value={getattr(self, 'value', None)!r})"


def _read_time(value: Any) -> int | None:
    if value is None:
        return None
    return rfc3339_to_ms(value)


class Feedback(Assessment):
    """A score for a trace: a value (bool, number, string, or a list or dict of them) or an error."""

    __slots__ = ("value", "error")

    kind = "feedback"

    def __init__(
        self,
        name: str = DEFAULT_FEEDBACK_NAME,
        value: Any = None,
        error: BaseException | AssessmentError | str | None = None,
        source: AssessmentSource | None = None,
        trace_id: str | None = None,
        metadata: dict[str, str] | None = None,
        span_id: str | None = None,
        create_time_ms: int | None = None,
        last_update_time_ms: int | None = None,
        rationale: str | None = None,
        overrides: str | None = None,
        valid: bool | None = True,
        assessment_id: str | None = None,
        _allow_empty: bool = False,
    ):
        if value is None and error is None and not _allow_empty:
            raise InvalidParameterError(
                f"Feedback {name!r} needs a value or an error: pass value=... or error=..."
            )
        self._init_common(
            name,
            source if source is not None else AssessmentSource(AssessmentSourceType.CODE),
            trace_id,
            metadata,
            span_id,
            create_time_ms,
            last_update_time_ms,
            rationale,
            overrides,
            valid,
            assessment_id,
        )
        self.value = value
        self.error = _to_assessment_error(error)

    @property
    def feedback(self) -> FeedbackValue:
        return FeedbackValue(self.value, self.error)

    @property
    def error_code(self) -> str | None:
        return self.error.error_code if self.error else None

    @property
    def error_message(self) -> str | None:
        return self.error.error_message if self.error else None

    def _value_dictionary(self) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"value": self.value}
        if self.error is not None:
            body["error"] = self.error.to_dictionary()
        return "feedback", body


def _to_assessment_error(error: BaseException | AssessmentError | str | None) -> AssessmentError | None:
    if error is None or isinstance(error, AssessmentError):
        return error
    if isinstance(error, BaseException):
        return AssessmentError.from_exception(error)
    if isinstance(error, str):
        return AssessmentError("ASSESSMENT_ERROR", error)
    raise InvalidParameterError(
        f"invalid Feedback error of type {type(error).__name__}: pass an exception, an AssessmentError or a string"
    )


class Expectation(Assessment):
    """The expected value for a trace (ground truth), usually from a person."""

    __slots__ = ("value",)

    kind = "expectation"

    def __init__(
        self,
        name: str,
        value: Any,
        source: AssessmentSource | None = None,
        trace_id: str | None = None,
        metadata: dict[str, str] | None = None,
        span_id: str | None = None,
        create_time_ms: int | None = None,
        last_update_time_ms: int | None = None,
        assessment_id: str | None = None,
        _allow_empty: bool = False,
    ):
        if value is None and not _allow_empty:
            raise InvalidParameterError(f"Expectation {name!r} needs a value: pass value=...")
        self._init_common(
            name,
            source if source is not None else AssessmentSource(AssessmentSourceType.HUMAN),
            trace_id,
            metadata,
            span_id,
            create_time_ms,
            last_update_time_ms,
            None,
            None,
            True,
            assessment_id,
        )
        self.value = value

    @property
    def expectation(self) -> ExpectationValue:
        return ExpectationValue(self.value)

    def _value_dictionary(self) -> tuple[str, dict[str, Any]]:
        if self.value is None or isinstance(self.value, (str, int, float, bool)):
            return "expectation", {"value": self.value}
        return "expectation", {
            "serialized_value": {
                "serialization_format": "JSON_FORMAT",
                "value": json.dumps(self.value, ensure_ascii=False, default=str),
            }
        }
