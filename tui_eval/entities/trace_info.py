"""TraceInfo: a trace's summary (id, time, duration, state, previews, metadata, tags, assessments)."""

from __future__ import annotations

import json
from typing import Any

from tui_eval.entities._time import ms_to_rfc3339, parse_duration_ms, rfc3339_to_ms
from tui_eval.entities.assessment import Assessment
from tui_eval.entities.trace_state import TraceState
from tui_eval.errors import TraceFormatError

TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
DEFAULT_EXPERIMENT_ID = "0"


class TraceLocation:
    """Where a trace lives. tui_eval writes MLFLOW_EXPERIMENT locations and keeps others verbatim."""

    __slots__ = ("type", "experiment_id", "_raw")

    def __init__(self, experiment_id: str | None = None, type: str = "MLFLOW_EXPERIMENT", raw: dict | None = None):
        self.type = type
        self.experiment_id = experiment_id
        self._raw = raw

    @classmethod
    def from_experiment_id(cls, experiment_id: str) -> TraceLocation:
        return cls(str(experiment_id))

    def to_dict(self) -> dict[str, Any]:
        if self._raw is not None:
            return self._raw
        return {"type": self.type, "mlflow_experiment": {"experiment_id": self.experiment_id}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TraceLocation:
        if not data:
            return cls(DEFAULT_EXPERIMENT_ID)
        experiment = data.get("mlflow_experiment") or {}
        experiment_id = experiment.get("experiment_id")
        location_type = data.get("type", "MLFLOW_EXPERIMENT")
        if location_type == "MLFLOW_EXPERIMENT" and experiment_id is not None and set(data) <= {
            "type",
            "mlflow_experiment",
        }:
            return cls(str(experiment_id))
        return cls(str(experiment_id) if experiment_id is not None else None, location_type, dict(data))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceLocation):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TraceLocation(type={self.type!r}, experiment_id={self.experiment_id!r})"


class TraceInfo:
    """The summary part of a trace, in MLflow 3's TraceInfo (V3) shape, with the V2 aliases."""

    def __init__(
        self,
        trace_id: str,
        trace_location: TraceLocation | None = None,
        request_time: int = 0,
        state: TraceState | str = TraceState.STATE_UNSPECIFIED,
        request_preview: str | None = None,
        response_preview: str | None = None,
        client_request_id: str | None = None,
        execution_duration: int | None = None,
        trace_metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        assessments: list[Assessment] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        self.trace_id = trace_id
        self.trace_location = trace_location or TraceLocation(DEFAULT_EXPERIMENT_ID)
        self.request_time = int(request_time)
        self.state = TraceState.parse(state)
        self.request_preview = request_preview
        self.response_preview = response_preview
        self.client_request_id = client_request_id
        self.execution_duration = execution_duration
        self.trace_metadata: dict[str, str] = trace_metadata if trace_metadata is not None else {}
        self.tags: dict[str, str] = tags if tags is not None else {}
        self.assessments: list[Assessment] = assessments if assessments is not None else []
        # Keys of an imported info dict that this model does not read, written back unchanged.
        self._extra = extra

    # --- V2 aliases and derived values ----------------------------------------------------

    @property
    def request_id(self) -> str:
        return self.trace_id

    @property
    def experiment_id(self) -> str | None:
        return self.trace_location.experiment_id

    @property
    def timestamp_ms(self) -> int:
        return self.request_time

    @property
    def execution_time_ms(self) -> int | None:
        return self.execution_duration

    @property
    def request_metadata(self) -> dict[str, str]:
        return self.trace_metadata

    @property
    def status(self) -> str:
        """The V2 status name: OK, ERROR, IN_PROGRESS or UNSPECIFIED."""
        if self.state == TraceState.STATE_UNSPECIFIED:
            return "UNSPECIFIED"
        return self.state.value

    @property
    def token_usage(self) -> dict[str, int] | None:
        """The trace's token usage ``{input_tokens, output_tokens, total_tokens}``, if recorded."""
        raw = self.trace_metadata.get(TOKEN_USAGE_KEY)
        if not raw:
            return None
        try:
            usage = json.loads(raw)
        except ValueError:
            return None
        return usage if isinstance(usage, dict) else None

    # --- dict form ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "trace_id": self.trace_id,
            "trace_location": self.trace_location.to_dict(),
        }
        if self.client_request_id is not None:
            data["client_request_id"] = self.client_request_id
        data["request_time"] = ms_to_rfc3339(self.request_time)
        data["state"] = self.state.value
        if self.trace_metadata:
            data["trace_metadata"] = dict(self.trace_metadata)
        if self.assessments:
            data["assessments"] = [assessment.to_dictionary() for assessment in self.assessments]
        if self.tags:
            data["tags"] = dict(self.tags)
        if self.request_preview is not None:
            data["request_preview"] = self.request_preview
        if self.response_preview is not None:
            data["response_preview"] = self.response_preview
        if self.execution_duration is not None:
            data["execution_duration_ms"] = self.execution_duration
        if self._extra:
            data.update(self._extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TraceInfo:
        """Read the V3 dict, the REST form (``execution_duration: "1.5s"``) or the V2 dict (``request_id``)."""
        if not isinstance(data, dict):
            raise TraceFormatError(f"invalid trace info: expected a JSON object, got {type(data).__name__}")
        if "request_id" in data and "trace_id" not in data:
            return cls._from_v2_dict(data)
        trace_id = data.get("trace_id")
        if not trace_id:
            raise TraceFormatError("invalid trace info: it has no trace_id")
        try:
            duration = data.get("execution_duration_ms")
            if duration is None:
                duration = parse_duration_ms(data.get("execution_duration"))
            assessments = [Assessment.from_dictionary(item) for item in data.get("assessments") or []]
            request_time = data.get("request_time")
            known = {
                "trace_id", "trace_location", "request_time", "state", "request_preview", "response_preview",
                "client_request_id", "execution_duration_ms", "execution_duration", "trace_metadata", "tags",
                "assessments",
            }  # fmt: skip
            extra = {key: value for key, value in data.items() if key not in known}
            return cls(
                trace_id=trace_id,
                trace_location=TraceLocation.from_dict(data.get("trace_location")),
                request_time=rfc3339_to_ms(request_time) if request_time is not None else 0,
                state=TraceState.parse(data.get("state")),
                request_preview=data.get("request_preview"),
                response_preview=data.get("response_preview"),
                client_request_id=data.get("client_request_id"),
                execution_duration=int(duration) if duration is not None else None,
                trace_metadata=_string_map(data.get("trace_metadata")),
                tags=_string_map(data.get("tags")),
                assessments=assessments,
                extra=extra or None,
            )
        except (ValueError, TypeError) as exc:
            if isinstance(exc, TraceFormatError):
                raise
            raise TraceFormatError(f"invalid trace info for {trace_id!r}: {exc}") from exc

    @classmethod
    def _from_v2_dict(cls, data: dict[str, Any]) -> TraceInfo:
        request_id = data["request_id"]
        try:
            duration = data.get("execution_time_ms")
            return cls(
                trace_id=request_id,
                trace_location=TraceLocation(str(data.get("experiment_id", DEFAULT_EXPERIMENT_ID))),
                request_time=int(data.get("timestamp_ms") or 0),
                state=TraceState.parse(data.get("status")),
                execution_duration=int(duration) if duration is not None else None,
                trace_metadata=_string_map(data.get("request_metadata")),
                tags=_string_map(data.get("tags")),
                assessments=[Assessment.from_dictionary(item) for item in data.get("assessments") or []],
            )
        except (ValueError, TypeError) as exc:
            raise TraceFormatError(f"invalid V2 trace info for {request_id!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceInfo):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TraceInfo(trace_id={self.trace_id!r}, state={self.state.value!r}, request_time={self.request_time})"


def _string_map(value: Any) -> dict[str, str]:
    """Read tags or metadata, given as a dict or as MLflow 2's list of ``{key, value}`` pairs."""
    if not value:
        return {}
    if isinstance(value, list):
        return {str(item["key"]): str(item.get("value", "")) for item in value}
    if not isinstance(value, dict):
        raise TraceFormatError(f"invalid tags or metadata: expected an object, got {type(value).__name__}")
    return {str(key): item if isinstance(item, str) else json.dumps(item) for key, item in value.items()}
