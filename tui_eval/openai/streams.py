"""Tracing of streamed responses: every chunk passes to the caller unchanged, the span ends once.

The SDK's `Stream` (or `AsyncStream`) object is kept, so `isinstance` checks, `.response`
and the SDK's stream helpers still work: its class is switched to a subclass that records
chunks on the way through. The span ends when the stream
- is read to the end (outputs: the reassembled response, usage from the usage chunk);
- fails midway (ERROR status, exception event, outputs: what arrived so far);
- is stopped early by the caller: a `break` out of the loop, `close()`, `aclose()`, or the
  stream object being garbage collected without being read to the end. The outputs then
  hold what was read so far and the span gets `tui_eval.stream.partial = true` and
  `tui_eval.stream.stop_reason`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from tui_eval.entities import SpanAttributeKey, SpanEvent
from tui_eval.openai.recording import (
    STREAM_PARTIAL_KEY,
    STREAM_STOP_REASON_KEY,
    CallRecording,
    report_fault,
    to_plain,
    token_usage,
)
from tui_eval.tracing.encoding import dump_value

CHUNK_EVENT_PREFIX = "mlflow.chunk.item."
_RECORDER_ATTRIBUTE = "_tui_eval_stream_recorder"
_TRACED_MARKER = "_tui_eval_traced_stream"


class StreamRecorder:
    """Collects a stream's chunks and ends its span exactly once."""

    __slots__ = ("recording", "chunks", "stamps", "finished", "lock", "finalizer", "__weakref__")

    def __init__(self, recording: CallRecording):
        self.recording = recording
        self.chunks: list[Any] = []
        self.stamps: list[int] = []
        self.finished = False
        self.lock = threading.Lock()
        self.finalizer: weakref.finalize | None = None

    def add(self, chunk: Any) -> None:
        if not self.finished:
            self.chunks.append(chunk)
            self.stamps.append(time.time_ns())

    def complete(self) -> None:
        """End the span of a stream read to the end."""
        if self._claim():
            self._end(partial_reason=None, error=None)

    def stop_early(self, reason: str) -> None:
        """End the span of a stream the caller stopped reading; no-op once ended."""
        if self._claim():
            self._end(partial_reason=reason, error=None)

    def fail(self, exception: BaseException) -> None:
        """End the span of a stream that raised midway."""
        if self._claim():
            self._end(partial_reason=None, error=exception)

    def _claim(self) -> bool:
        with self.lock:
            if self.finished:
                return False
            self.finished = True
        finalizer = self.finalizer
        if finalizer is not None:
            finalizer.detach()
        return True

    def _end(self, partial_reason: str | None, error: BaseException | None) -> None:
        recording = self.recording
        span = recording.span
        outputs = None
        try:
            plain_chunks = [to_plain(chunk) for chunk in self.chunks]
            outputs = reassemble(recording.endpoint.kind, plain_chunks)
            for index, (chunk, stamp) in enumerate(zip(plain_chunks, self.stamps)):
                span.add_event(SpanEvent(
                    CHUNK_EVENT_PREFIX + str(index),
                    timestamp=stamp,
                    attributes={SpanAttributeKey.CHUNK_VALUE: dump_value(chunk)},
                ))
            usage = token_usage(outputs)
            if usage is not None:
                span.set_attribute(SpanAttributeKey.CHAT_USAGE, usage)
            if partial_reason is not None:
                span.set_attributes({STREAM_PARTIAL_KEY: True, STREAM_STOP_REASON_KEY: partial_reason})
        except Exception as exc:  # noqa: BLE001 - end the span anyway
            report_fault("reassemble a streamed OpenAI response", exc)
        if error is not None:
            recording.fail(error, outputs)
            return
        try:
            span.set_outputs(outputs)
        except Exception as exc:  # noqa: BLE001
            report_fault("record a streamed OpenAI response", exc)
        recording.end()


# --- the stream subclasses ------------------------------------------------------------------


def _sync_methods(stream_class: type) -> dict[str, Any]:
    """Return the methods of a traced subclass of a sync `Stream` class."""

    def __iter__(self: Any) -> Any:
        stream_recorder: StreamRecorder = getattr(self, _RECORDER_ATTRIBUTE)
        try:
            for chunk in self._iterator:
                stream_recorder.add(chunk)
                yield chunk
        except GeneratorExit:
            # The consumer's loop ended early (break) or its iterator was closed or collected.
            stream_recorder.stop_early("break")
            raise
        except BaseException as exc:
            stream_recorder.fail(exc)
            raise
        stream_recorder.complete()

    def __next__(self: Any) -> Any:
        stream_recorder: StreamRecorder = getattr(self, _RECORDER_ATTRIBUTE)
        try:
            chunk = self._iterator.__next__()
        except StopIteration:
            stream_recorder.complete()
            raise
        except BaseException as exc:
            stream_recorder.fail(exc)
            raise
        stream_recorder.add(chunk)
        return chunk

    def close(self: Any) -> None:
        getattr(self, _RECORDER_ATTRIBUTE).stop_early("close")
        stream_class.close(self)

    return {"__iter__": __iter__, "__next__": __next__, "close": close}


def _async_methods(stream_class: type) -> dict[str, Any]:
    """Return the methods of a traced subclass of an `AsyncStream` class."""

    async def __aiter__(self: Any) -> Any:
        stream_recorder: StreamRecorder = getattr(self, _RECORDER_ATTRIBUTE)
        try:
            async for chunk in self._iterator:
                stream_recorder.add(chunk)
                yield chunk
        except GeneratorExit:
            stream_recorder.stop_early("break")
            raise
        except asyncio.CancelledError:
            stream_recorder.stop_early("cancelled")
            raise
        except BaseException as exc:
            stream_recorder.fail(exc)
            raise
        stream_recorder.complete()

    async def __anext__(self: Any) -> Any:
        stream_recorder: StreamRecorder = getattr(self, _RECORDER_ATTRIBUTE)
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            stream_recorder.complete()
            raise
        except asyncio.CancelledError:
            stream_recorder.stop_early("cancelled")
            raise
        except BaseException as exc:
            stream_recorder.fail(exc)
            raise
        stream_recorder.add(chunk)
        return chunk

    async def close(self: Any) -> None:
        getattr(self, _RECORDER_ATTRIBUTE).stop_early("close")
        await stream_class.close(self)

    async def aclose(self: Any) -> None:
        getattr(self, _RECORDER_ATTRIBUTE).stop_early("aclose")
        await stream_class.aclose(self)

    methods: dict[str, Any] = {"__aiter__": __aiter__, "__anext__": __anext__, "close": close}
    if hasattr(stream_class, "aclose"):
        methods["aclose"] = aclose
    return methods


_traced_classes: dict[type, type] = {}
_traced_classes_lock = threading.Lock()


def _traced_class(stream_class: type, asynchronous: bool) -> type:
    """Return the cached traced subclass of a stream class.

    The subclass adds no fields and is the class's direct child, which is what makes the
    `__class__` switch of an existing stream object legal.
    """
    with _traced_classes_lock:
        traced = _traced_classes.get(stream_class)
        if traced is None:
            methods = _async_methods(stream_class) if asynchronous else _sync_methods(stream_class)
            namespace = {**methods, "__module__": __name__, _TRACED_MARKER: True}
            traced = type(f"Traced{stream_class.__name__}", (stream_class,), namespace)
            _traced_classes[stream_class] = traced
        return traced


def is_traced_stream(stream: Any) -> bool:
    """Return True for a stream whose class autolog switched."""
    return bool(getattr(type(stream), _TRACED_MARKER, False))


def trace_stream(stream: Any, recording: CallRecording, asynchronous: bool) -> Any:
    """Make `stream` record into `recording`'s span; return the same object."""
    stream_recorder = StreamRecorder(recording)
    try:
        setattr(stream, _RECORDER_ATTRIBUTE, stream_recorder)
        stream.__class__ = _traced_class(type(stream), asynchronous)
    except Exception as exc:  # noqa: BLE001 - the stream keeps working, untraced
        report_fault("trace an OpenAI stream", exc)
        recording.end_without_outputs("the stream object could not be instrumented")
        return stream
    # A stream dropped without being read to the end still ends its span.
    stream_recorder.finalizer = weakref.finalize(stream, stream_recorder.stop_early, "dropped")
    return stream


# --- reassembly ---------------------------------------------------------------------------


def reassemble(kind: str, chunks: list[Any]) -> Any:
    """Build the response the chunks add up to, in the non-streamed response's shape.

    A stream that stopped early gives the same shape with what arrived: the text so far
    and `finish_reason` None.
    """
    if kind == "responses":
        return _reassemble_responses(chunks)
    if kind == "completion":
        return _reassemble_completion(chunks)
    return _reassemble_chat(chunks)


def _reassemble_chat(chunks: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"id": None, "object": "chat.completion", "created": None, "model": None,
                              "choices": [], "usage": None}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                result[key] = chunk[key]
        if chunk.get("usage"):
            result["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            state = choices.setdefault(index, {
                "index": index,
                "message": {"role": "assistant", "content": None},
                "finish_reason": None,
                "tool_calls": {},
            })
            delta = choice.get("delta") or {}
            message = state["message"]
            if delta.get("role"):
                message["role"] = delta["role"]
            if delta.get("content") is not None:
                message["content"] = (message["content"] or "") + delta["content"]
            if delta.get("refusal"):
                message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(state["tool_calls"], call)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
    for index in sorted(choices):
        state = choices[index]
        calls = state.pop("tool_calls")
        if calls:
            state["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
        result["choices"].append(state)
    return result


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: Mapping[str, Any]) -> None:
    index = delta.get("index", 0)
    call = calls.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]


def _reassemble_completion(chunks: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"id": None, "object": "text_completion", "created": None, "model": None,
                              "choices": [], "usage": None}
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        for key in ("id", "created", "model", "system_fingerprint"):
            if chunk.get(key) is not None:
                result[key] = chunk[key]
        if chunk.get("usage"):
            result["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            state = choices.setdefault(index, {"index": index, "text": "", "finish_reason": None})
            state["text"] += choice.get("text") or ""
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
    result["choices"] = [choices[i] for i in sorted(choices)]
    return result


def _reassemble_responses(events: list[Any]) -> dict[str, Any] | None:
    """Return the final `response` of a Responses API stream, or one built from its text deltas."""
    latest: dict[str, Any] | None = None
    texts: dict[tuple[int, int], str] = {}
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if isinstance(event.get("response"), Mapping):
            latest = dict(event["response"])
            if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
                return latest
        if event.get("type") == "response.output_text.delta":
            key = (event.get("output_index", 0), event.get("content_index", 0))
            texts[key] = texts.get(key, "") + (event.get("delta") or "")
    partial = dict(latest or {"object": "response"})
    partial["status"] = "incomplete"
    partial["output"] = [
        {"type": "message", "role": "assistant", "status": "incomplete",
         "content": [{"type": "output_text", "text": text, "annotations": []}]}
        for _, text in sorted(texts.items())
    ]
    return partial
