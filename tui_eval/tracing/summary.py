"""Trace-level values computed when a root span ends: previews, metadata and token usage."""

from __future__ import annotations

import json
from typing import Any

from tui_eval.entities import Span, SpanAttributeKey
from tui_eval.tracing.encoding import clean_text, dump_value

# MLflow's open-source limits (mlflow/tracing/constant.py, 3.x): previews are cut to 1000
# characters and the trace metadata copies of the root inputs and outputs to 250, each
# ending in "..." when cut.
PREVIEW_MAX_CHARS = 1000
METADATA_MAX_CHARS = 250
TRUNCATION_SUFFIX = "..."

SCHEMA_VERSION_KEY = "mlflow.trace_schema.version"
SCHEMA_VERSION = "3"
TRACE_INPUTS_KEY = "mlflow.traceInputs"
TRACE_OUTPUTS_KEY = "mlflow.traceOutputs"
SOURCE_RUN_KEY = "mlflow.sourceRun"
TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
TRACE_NAME_TAG = "mlflow.traceName"

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "total_tokens")
# Keys whose presence in a JSON object means it may carry chat messages.
_CHAT_KEYS = ('"messages"', '"choices"', '"input"', '"output"', '"request"')


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX


def preview(raw: str | None, role: str) -> str | None:
    """Return the preview of a root span's stored inputs or outputs.

    For a chat-shaped payload (OpenAI chat request or response, Responses API input or
    output) it is the text of the last message with `role`, or of the last message when
    none has that role. Any other payload previews as its stored JSON text. The preview is
    cut to `PREVIEW_MAX_CHARS`, and is None when there is nothing to show.
    """
    if not raw:
        return None
    text = raw
    if raw.startswith("{") and any(key in raw for key in _CHAT_KEYS):
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        message_text = _chat_text(payload, role)
        if message_text:
            text = message_text
    return truncate(text, PREVIEW_MAX_CHARS)


def _chat_text(payload: Any, role: str) -> str | None:
    messages = _chat_messages(payload)
    if not messages:
        return None
    chosen = messages[-1]
    for message in reversed(messages):
        if message.get("role") == role:
            chosen = message
            break
    return _message_text(chosen)


def _chat_messages(payload: Any) -> list[dict[str, Any]] | None:
    if not isinstance(payload, dict):
        return None
    messages = payload.get("messages")
    if messages and isinstance(messages, list):
        return [item for item in messages if _is_message(item)]
    choices = payload.get("choices")
    if choices and isinstance(choices, list) and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if _is_message(message):
            return [message]
    for key in ("input", "output"):
        items = payload.get(key)
        if items and isinstance(items, list):
            return [item for item in items if _is_message(item)]
    if "request" in payload:
        return _chat_messages(payload["request"])
    return None


def _is_message(item: Any) -> bool:
    return isinstance(item, dict) and "role" in item and "content" in item


def _message_text(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # A list of content parts: the first text part is the message's text.
        for part in content:
            if isinstance(part, str):
                return part
            if isinstance(part, dict) and part.get("type") in ("text", "output_text", "input_text"):
                text = part.get("text")
                return text if isinstance(text, str) else None
    return None


def aggregate_token_usage(spans: list[Span]) -> dict[str, int] | None:
    """Sum `mlflow.chat.tokenUsage` over the outermost reporting span of each branch.

    A span whose ancestor also reports usage is skipped, because the ancestor's figure
    already includes it (a wrapper around an LLM call reporting the call's usage).
    Returns None when no span reports usage.
    """
    reporting: dict[str, dict[str, Any]] = {}
    for span in spans:
        usage = span.get_attribute(SpanAttributeKey.CHAT_USAGE)
        if isinstance(usage, dict):
            reporting[span.span_id] = usage
    if not reporting:
        return None

    parents = {span.span_id: span.parent_id for span in spans}
    totals = dict.fromkeys(_TOKEN_FIELDS, 0)
    for span_id, usage in reporting.items():
        if _has_reporting_ancestor(span_id, parents, reporting):
            continue
        for field in _TOKEN_FIELDS:
            value = usage.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[field] += int(value)
    return totals


def _has_reporting_ancestor(span_id: str, parents: dict[str, str | None], reporting: dict[str, Any]) -> bool:
    seen = {span_id}
    parent = parents.get(span_id)
    while parent is not None and parent not in seen:
        if parent in reporting:
            return True
        seen.add(parent)
        parent = parents.get(parent)
    return False


def trace_metadata(root: Span, spans: list[Span], run_id: str | None) -> dict[str, str]:
    """Return the metadata tracing writes for every trace (schema, root inputs and outputs, usage, run)."""
    raw = root.raw_attributes
    metadata = {
        SCHEMA_VERSION_KEY: SCHEMA_VERSION,
        TRACE_INPUTS_KEY: truncate(raw.get(SpanAttributeKey.INPUTS) or "", METADATA_MAX_CHARS),
        TRACE_OUTPUTS_KEY: truncate(raw.get(SpanAttributeKey.OUTPUTS) or "", METADATA_MAX_CHARS),
    }
    usage = aggregate_token_usage(spans)
    if usage is not None:
        metadata[TOKEN_USAGE_KEY] = dump_value(usage)
    if run_id:
        metadata[SOURCE_RUN_KEY] = run_id
    return metadata


def string_map(values: dict[Any, Any] | None) -> dict[str, str]:
    """Return tags or metadata as str to str: text stays, anything else becomes its JSON text."""
    if not values:
        return {}
    result = {}
    for key, value in values.items():
        key_text = clean_text(key) if isinstance(key, str) else dump_value(key).strip('"')
        result[key_text] = clean_text(value) if isinstance(value, str) else dump_value(value)
    return result
