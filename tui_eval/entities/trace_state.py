from __future__ import annotations

from enum import Enum


class TraceState(str, Enum):
    """A trace's state, derived from its root span's status."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | TraceState | None) -> TraceState:
        """Read a state in any spelling MLflow has used (V2 statuses included)."""
        if isinstance(value, TraceState):
            return value
        if value is None or value == "":
            return cls.STATE_UNSPECIFIED
        text = str(value).upper()
        if text.startswith("TRACE_STATUS_") or text.startswith("TRACE_STATE_"):
            text = text.split("_", 2)[2]
        if text in ("UNSPECIFIED", "UNSET"):
            return cls.STATE_UNSPECIFIED
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"invalid trace state {value!r}: expected OK, ERROR, IN_PROGRESS or STATE_UNSPECIFIED"
            ) from None
