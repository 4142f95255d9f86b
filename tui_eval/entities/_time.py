"""Conversions between epoch milliseconds or nanoseconds and the RFC 3339 strings MLflow writes."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_to_rfc3339(ms: int) -> str:
    """Format epoch milliseconds the way protobuf's JSON form prints a Timestamp (UTC, Z)."""
    seconds, millis = divmod(int(ms), 1000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        return f"{stamp}.{millis:03d}Z"
    return f"{stamp}Z"


def rfc3339_to_ms(value: str | int | float) -> int:
    """Parse an RFC 3339 timestamp (or epoch milliseconds already) into epoch milliseconds."""
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"invalid timestamp {value!r}: expected RFC 3339 such as 2025-06-01T12:00:00.250Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone.utc)
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    offset_seconds = 0
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_seconds = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (int(moment.timestamp()) - offset_seconds) * 1000 + millis


def parse_duration_ms(value: str | int | float | None) -> int | None:
    """Parse a protobuf Duration string such as ``"32.583s"`` (the REST form) into milliseconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip()
    if text.endswith("s"):
        text = text[:-1]
    return int(round(float(text) * 1000))


def to_int_ns(value: str | int | float | None) -> int | None:
    """Read a nanosecond time that OTLP JSON may write as a string."""
    if value is None or value == "":
        return None
    return int(value)
