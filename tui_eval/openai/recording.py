"""One instrumented OpenAI call: its span's inputs, attributes, outputs, token usage and errors.

Nothing here raises into the caller: `CallRecording.start` returns None when it cannot record,
and every later step catches its own faults and logs them (rate-limited) instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui_eval.entities import SpanAttributeKey, SpanStatus, SpanStatusCode, SpanType
from tui_eval.openai import secrets as secret_masking
from tui_eval.tracing import provider, recorder
from tui_eval.tracing.encoding import clean_text

logger = logging.getLogger(__name__)

# Attributes tui_eval adds beyond MLflow's, for streams the caller stopped reading early and
# for responses whose body the SDK had not read when the call returned.
STREAM_PARTIAL_KEY = "tui_eval.stream.partial"
STREAM_STOP_REASON_KEY = "tui_eval.stream.stop_reason"
OUTPUTS_UNAVAILABLE_KEY = "tui_eval.outputs_unavailable"
MESSAGE_FORMAT = "openai"

_ITERATOR_EXEMPT = (str, bytes, bytearray, list, tuple, dict)


@dataclass(frozen=True)
class Endpoint:
    """The kind of an instrumented SDK method: its span type and the argument that carries the prompt."""

    kind: str  # "chat", "completion", "embedding" or "responses"
    span_type: str
    prompt_argument: str  # "messages" or "input"; left out of the per-argument attributes


CHAT = Endpoint("chat", SpanType.CHAT_MODEL, "messages")
COMPLETION = Endpoint("completion", SpanType.LLM, "prompt")
EMBEDDING = Endpoint("embedding", SpanType.EMBEDDING, "input")
RESPONSES = Endpoint("responses", SpanType.CHAT_MODEL, "input")


class CallRecording:
    """The span of one SDK call, from the request to the (possibly streamed) response."""

    __slots__ = ("span", "endpoint", "secrets")

    def __init__(self, span: Any, endpoint: Endpoint, secrets: tuple[str, ...]):
        self.span = span
        self.endpoint = endpoint
        self.secrets = secrets

    @classmethod
    def start(cls, endpoint: Endpoint, resource: Any, kwargs: dict[str, Any]) -> CallRecording | None:
        """Open the span for a call whose keyword arguments are `kwargs`; None when not recording.

        Arguments that are one-shot iterators (a generator of messages) are turned into lists
        in `kwargs` first, so that recording them does not consume what the SDK will send.
        """
        if not provider.is_tracing_enabled():
            return None
        try:
            for key, value in kwargs.items():
                if not isinstance(value, _ITERATOR_EXEMPT) and hasattr(value, "__next__") and hasattr(value, "__iter__"):
                    kwargs[key] = list(value)
            inputs = _recorded_inputs(kwargs)
            span = recorder.begin_span(type(resource).__name__, endpoint.span_type)
        except Exception as exc:  # noqa: BLE001 - the call runs untraced
            report_fault("start a span for an OpenAI call", exc)
            return None

        recording = cls(span, endpoint, ())
        try:
            span.set_inputs(inputs)
            attributes = {key: value for key, value in inputs.items() if key != endpoint.prompt_argument}
            if endpoint.kind in ("chat", "completion", "responses"):
                attributes[SpanAttributeKey.MESSAGE_FORMAT] = MESSAGE_FORMAT
            tools = normalize_tools(inputs.get("tools"))
            if tools:
                attributes[SpanAttributeKey.CHAT_TOOLS] = tools
            span.set_attributes(attributes)
            secrets = secret_masking.client_secrets(getattr(resource, "_client", None))
            if "extra_headers" in kwargs or "extra_query" in kwargs or "extra_body" in kwargs:
                secrets += secret_masking.request_secrets(kwargs)
            recording.secrets = secrets
        except Exception as exc:  # noqa: BLE001 - keep the span, with what was recorded so far
            report_fault("record the request of an OpenAI call", exc)
        return recording

    # -- ending ----------------------------------------------------------------------------------

    def end_with_response(self, response: Any) -> None:
        """End the span with a parsed, non-streamed SDK response."""
        try:
            text = response_json(response)
            if text is None:
                self.span.set_outputs(to_plain(response))
            else:
                # The SDK's own JSON serialiser is about twice as fast as dumping the
                # model to a dict and encoding that, and gives the same decoded value.
                self.span.raw_attributes[SpanAttributeKey.OUTPUTS] = text
            usage = token_usage_of(response)
            attributes = {SpanAttributeKey.CHAT_USAGE: usage} if usage is not None else {}
            self.span.set_attributes(attributes)  # also drops the decoded-attribute cache
        except Exception as exc:  # noqa: BLE001 - end the span without outputs
            report_fault("record the response of an OpenAI call", exc)
        self.end()

    def end_without_outputs(self, reason: str) -> None:
        """End the span of a call whose response body tui_eval cannot read."""
        try:
            self.span.set_attribute(OUTPUTS_UNAVAILABLE_KEY, reason)
        except Exception as exc:  # noqa: BLE001
            report_fault("record an OpenAI call", exc)
        self.end()

    def fail(self, exception: BaseException, outputs: Any = None) -> None:
        """End the span as ERROR with an exception event; the caller re-raises the exception."""
        try:
            event, description = recorder.exception_event(exception)
            self.span.add_event(event)
            self.span.set_status(SpanStatus(SpanStatusCode.ERROR, description))
            if outputs is not None:
                self.span.set_outputs(outputs)
        except Exception as exc:  # noqa: BLE001 - the caller's exception matters more
            report_fault("record an OpenAI call's exception", exc)
        self.end(scrub_patterns=True)

    def end(self, scrub_patterns: bool = False) -> None:
        """Remove secrets from everything recorded, then end the span."""
        try:
            self._scrub(scrub_patterns)
        except Exception as exc:  # noqa: BLE001
            report_fault("mask secrets in an OpenAI span", exc)
        try:
            self.span.end()
        except Exception as exc:  # noqa: BLE001
            report_fault("end an OpenAI span", exc)

    def _scrub(self, scrub_patterns: bool) -> None:
        secrets = self.secrets
        span = self.span
        if secrets:
            raw = span.raw_attributes
            changed = False
            for key, value in raw.items():
                if isinstance(value, str):
                    cleaned = secret_masking.scrub_known(value, secrets)
                    if cleaned is not value and cleaned != value:
                        raw[key] = cleaned
                        changed = True
            if changed:
                span.set_attributes({})  # drops the decoded-attribute cache
        if not (secrets or scrub_patterns):
            return
        clean = secret_masking.scrub_text if scrub_patterns else secret_masking.scrub_known
        for event in span.events:
            if event.attributes:
                event.attributes = {
                    key: clean(value, secrets) if isinstance(value, str) else value
                    for key, value in event.attributes.items()
                }
        status = span.status
        if status.description:
            span.set_status(SpanStatus(status.status_code, clean(status.description, secrets)))


# --- conversions ------------------------------------------------------------------------------


def _recorded_inputs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the arguments the caller gave, without SDK sentinels, with credentials masked."""
    inputs: dict[str, Any] = {}
    for key, value in kwargs.items():
        if is_sentinel(value):
            continue
        if key == "extra_headers":
            value = secret_masking.mask_headers(value)
            if not value:
                continue
        elif key in ("extra_query", "extra_body"):
            value = secret_masking.mask_mapping(value)
        inputs[key] = value
    return inputs


def is_sentinel(value: Any) -> bool:
    """Return True for the SDK's "argument not given" markers (`NOT_GIVEN`, `omit`)."""
    return type(value).__name__ in ("NotGiven", "Omit") and type(value).__module__.startswith("openai")


def to_plain(value: Any) -> Any:
    """Return an SDK response as plain JSON-compatible data (pydantic `model_dump`)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", warnings=False)
        except TypeError:
            return dump()
    return value


def response_json(response: Any) -> str | None:
    """Return an SDK response model as JSON text, or None when it is not a pydantic model."""
    dump_json = getattr(response, "model_dump_json", None)
    if not callable(dump_json):
        return None
    try:
        return clean_text(dump_json(warnings=False))
    except TypeError:
        return None


def token_usage_of(response: Any) -> dict[str, int] | None:
    """Return `{input_tokens, output_tokens, total_tokens}` from a response model or dict."""
    usage = response.get("usage") if isinstance(response, Mapping) else getattr(response, "usage", None)
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        usage = to_plain(usage)
    return token_usage({"usage": usage})


def token_usage(outputs: Any) -> dict[str, int] | None:
    """Return `{input_tokens, output_tokens, total_tokens}` from a response's usage block."""
    if not isinstance(outputs, Mapping):
        return None
    usage = outputs.get("usage")
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        input_tokens = usage.get("input_tokens") or 0
        output_tokens = usage.get("output_tokens") or 0
    else:  # chat, legacy completions and embeddings
        input_tokens = usage.get("prompt_tokens") or 0
        output_tokens = usage.get("completion_tokens") or 0
    total = usage.get("total_tokens")
    if not isinstance(total, int):
        total = input_tokens + output_tokens
    return {"input_tokens": int(input_tokens), "output_tokens": int(output_tokens), "total_tokens": int(total)}


def normalize_tools(tools: Any) -> list[dict[str, Any]] | None:
    """Return tool definitions in the chat API's form, `{"type": "function", "function": {...}}`.

    The Responses API's flat form (`{"type": "function", "name": ...}`) is converted; other
    tool types (web search, file search) are kept as given.
    """
    if not isinstance(tools, (list, tuple)) or not tools:
        return None
    normalized = []
    for tool in tools:
        plain = to_plain(tool)
        if not isinstance(plain, Mapping):
            continue
        if isinstance(plain.get("function"), Mapping):
            normalized.append({"type": "function", "function": dict(plain["function"])})
        elif plain.get("type") == "function" and "name" in plain:
            function = {key: plain[key] for key in ("name", "description", "parameters", "strict") if key in plain}
            normalized.append({"type": "function", "function": function})
        else:
            normalized.append(dict(plain))
    return normalized or None


# --- fault reporting --------------------------------------------------------------------------

_reported: set[str] = set()
_reported_lock = threading.Lock()


def report_fault(action: str, exc: BaseException) -> None:
    """Log a fault inside the instrumentation: the first per action as a warning, later ones at debug."""
    with _reported_lock:
        first = action not in _reported
        _reported.add(action)
    if first:
        logger.warning("tui_eval could not %s; the call itself is not affected: %s", action, exc, exc_info=exc)
    else:
        logger.debug("tui_eval could not %s: %s", action, exc, exc_info=exc)
