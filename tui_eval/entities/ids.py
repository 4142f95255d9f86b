"""Identifier formats shared with MLflow 3 and OpenTelemetry.

A trace id is ``"tr-"`` followed by the 32-hex OpenTelemetry trace id, a span id is 16 hex
characters, an assessment id is ``"a-"`` followed by 32 hex characters and a run id is
32 hex characters. MLflow's span dicts carry the OpenTelemetry ids base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import os

TRACE_ID_PREFIX = "tr-"


def new_trace_id() -> str:
    return TRACE_ID_PREFIX + os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def new_assessment_id() -> str:
    return "a-" + os.urandom(16).hex()


def new_run_id() -> str:
    return os.urandom(16).hex()


def otel_hex_from_trace_id(trace_id: str) -> str | None:
    """Return the 32-hex OpenTelemetry id inside ``"tr-<hex>"``, or None for other id forms."""
    if trace_id.startswith(TRACE_ID_PREFIX):
        candidate = trace_id[len(TRACE_ID_PREFIX):]
        if _is_hex(candidate, 32):
            return candidate.lower()
    return None


def hex_to_base64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode("ascii")


def normalize_span_id(raw: str | int | None, *, nbytes: int = 8) -> str | None:
    """Turn a span or trace id in any form MLflow has written into lower-case hex.

    Accepted: base64 of the raw bytes (MLflow 3.4 and 3.6+), hex with or without ``0x``
    (MLflow 2 and 3.5.0), ``tr-`` prefixed trace ids, and integers. An empty string or None
    means "no id" (a root span's parent).
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, int):
        return format(raw, f"0{nbytes * 2}x")
    text = str(raw)
    if text.startswith(TRACE_ID_PREFIX):
        text = text[len(TRACE_ID_PREFIX):]
    if _is_hex(text, nbytes * 2):
        return text.lower()
    # Base64 is tried before the "0x" form: a base64 id may itself start with "0x".
    if len(text) == 4 * ((nbytes + 2) // 3):
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == nbytes:
            return decoded.hex()
    if text[:2].lower() == "0x" and 0 < len(text) - 2 <= nbytes * 2 and _is_hex(text[2:], len(text) - 2):
        return text[2:].lower().rjust(nbytes * 2, "0")
    raise ValueError(
        f"invalid id {raw!r}: expected {nbytes * 2} hex characters or base64 of {nbytes} bytes"
    )


def _is_hex(text: str, length: int) -> bool:
    if len(text) != length:
        return False
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
