"""`autolog()`: patch the installed `openai` SDK so that each API call is recorded as a span.

Patched methods (sync and async classes alike), as MLflow 3's OpenAI autolog does:
chat `Completions.create` and `.parse`, legacy `Completions.create`, `Embeddings.create`,
`Responses.create` and `.parse`. The `with_raw_response` variants and the `.stream()`
helpers call these methods, so they are recorded too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from tui_eval.openai.recording import CHAT, COMPLETION, EMBEDDING, RESPONSES, CallRecording, Endpoint, report_fault
from tui_eval.openai.streams import trace_stream

logger = logging.getLogger(__name__)

ORIGINAL_ATTRIBUTE = "__tui_eval_original__"

# (module, class, method, endpoint); a module or class the installed SDK lacks is skipped.
PATCH_TARGETS: tuple[tuple[str, str, str, Endpoint], ...] = (
    ("openai.resources.chat.completions", "Completions", "create", CHAT),
    ("openai.resources.chat.completions", "AsyncCompletions", "create", CHAT),
    ("openai.resources.chat.completions", "Completions", "parse", CHAT),
    ("openai.resources.chat.completions", "AsyncCompletions", "parse", CHAT),
    ("openai.resources.beta.chat.completions", "Completions", "parse", CHAT),
    ("openai.resources.beta.chat.completions", "AsyncCompletions", "parse", CHAT),
    ("openai.resources.completions", "Completions", "create", COMPLETION),
    ("openai.resources.completions", "AsyncCompletions", "create", COMPLETION),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDING),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDING),
    ("openai.resources.responses", "Responses", "create", RESPONSES),
    ("openai.resources.responses", "AsyncResponses", "create", RESPONSES),
    ("openai.resources.responses", "Responses", "parse", RESPONSES),
    ("openai.resources.responses", "AsyncResponses", "parse", RESPONSES),
)

_lock = threading.Lock()
# (class, method name) -> the SDK's own function, for every method patched now.
_patched: dict[tuple[type, str], Callable[..., Any]] = {}
# Checked on every call, so that wrappers the SDK captured before `autolog(disable=True)`
# (a `with_raw_response` object built while autolog was on) pass calls straight through.
_enabled = False


def autolog(disable: bool = False, silent: bool = False, log_traces: bool = True) -> None:
    """Record every OpenAI SDK call as a span: CHAT_MODEL, LLM or EMBEDDING, as MLflow does.

    Calling it again does not wrap twice. `disable=True` (or `log_traces=False`) restores
    the SDK's own methods. `silent=True` keeps the log quiet about what was patched.
    """
    global _enabled
    with _lock:
        if disable or not log_traces:
            _enabled = False
            restored = _restore_all()
            if restored and not silent:
                logger.info("OpenAI autolog disabled: restored %d SDK methods", restored)
            return
        _enabled = True
        patched = 0
        for module_name, class_name, method_name, endpoint in PATCH_TARGETS:
            resource_class = _find_class(module_name, class_name)
            if resource_class is not None and _patch(resource_class, method_name, endpoint):
                patched += 1
        if not silent:
            logger.info("OpenAI autolog enabled: %d SDK methods instrumented", len(_patched))
        logger.debug("OpenAI autolog patched %d methods on this call", patched)


def is_enabled() -> bool:
    """Return True while autolog is on."""
    return _enabled


def _find_class(module_name: str, class_name: str) -> type | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.debug("OpenAI autolog: %s is not in the installed SDK; skipped", module_name)
        return None
    found = getattr(module, class_name, None)
    return found if isinstance(found, type) else None


def _patch(resource_class: type, method_name: str, endpoint: Endpoint) -> bool:
    current = resource_class.__dict__.get(method_name)
    if current is None or getattr(current, ORIGINAL_ATTRIBUTE, None) is not None:
        return False  # missing, or already ours
    # The SDK's async methods sit under a sync decorator (`required_args`), so the resource
    # class, not the function, shows whether a method returns a coroutine.
    if _is_async_resource(resource_class) or inspect.iscoroutinefunction(inspect.unwrap(current)):
        wrapper = _async_wrapper(current, endpoint)
    else:
        wrapper = _sync_wrapper(current, endpoint)
    setattr(wrapper, ORIGINAL_ATTRIBUTE, current)
    setattr(resource_class, method_name, wrapper)
    _patched[(resource_class, method_name)] = current
    return True


def _is_async_resource(resource_class: type) -> bool:
    try:
        from openai._resource import AsyncAPIResource
    except ImportError:
        return resource_class.__name__.startswith("Async")
    return issubclass(resource_class, AsyncAPIResource)


def _restore_all() -> int:
    restored = 0
    for (resource_class, method_name), original in list(_patched.items()):
        current = resource_class.__dict__.get(method_name)
        if getattr(current, ORIGINAL_ATTRIBUTE, None) is original:
            setattr(resource_class, method_name, original)
            restored += 1
        else:
            logger.warning(
                "OpenAI autolog: %s.%s was replaced by other code after autolog patched it; left as is",
                resource_class.__name__, method_name,
            )
        del _patched[(resource_class, method_name)]
    return restored


# --- wrappers -------------------------------------------------------------------------------


def _sync_wrapper(original: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
    @functools.wraps(original)
    def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _enabled:
            return original(self, *args, **kwargs)
        recording = CallRecording.start(endpoint, self, kwargs)
        if recording is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            recording.fail(exc)
            raise
        return _finish(recording, result)

    return traced_call


def _async_wrapper(original: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
    @functools.wraps(original)
    async def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _enabled:
            return await original(self, *args, **kwargs)
        recording = CallRecording.start(endpoint, self, kwargs)
        if recording is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            recording.fail(exc)
            raise
        return _finish(recording, result)

    return traced_call


@functools.lru_cache(maxsize=1)
def _sdk_result_types() -> tuple[type, type, type, type, type]:
    from openai import AsyncStream, Stream
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import APIResponse, AsyncAPIResponse

    return Stream, AsyncStream, LegacyAPIResponse, APIResponse, AsyncAPIResponse


def _finish(recording: CallRecording, result: Any) -> Any:
    """End the span of a call that returned (or hand it to a stream); return `result` unchanged."""
    Stream, AsyncStream, LegacyAPIResponse, APIResponse, AsyncAPIResponse = _sdk_result_types()  # noqa: N806
    try:
        if isinstance(result, (Stream, AsyncStream)):
            return trace_stream(result, recording, asynchronous=isinstance(result, AsyncStream))
        if isinstance(result, LegacyAPIResponse):
            # `with_raw_response`: parse() caches its result, so the caller's later parse()
            # returns the same object, the traced stream included.
            parsed = result.parse()
            if isinstance(parsed, (Stream, AsyncStream)):
                trace_stream(parsed, recording, asynchronous=isinstance(parsed, AsyncStream))
            else:
                recording.end_with_response(parsed)
            return result
        if isinstance(result, (APIResponse, AsyncAPIResponse)):
            # NOTE: `with_streaming_response` hands the caller the unread body. Reading it here
            # would take it from the caller, so these spans have no outputs and no token usage.
            recording.end_without_outputs("with_streaming_response: the body is read by the caller")
            return result
        recording.end_with_response(result)
    except Exception as exc:  # noqa: BLE001 - the caller gets its result whatever happens here
        report_fault("record the result of an OpenAI call", exc)
        recording.end()
    return result
