"""The public tracing API, named and shaped like MLflow 3's `mlflow.trace`, `mlflow.start_span`, ...

Tracing does not raise into the traced code: a value that cannot be encoded is recorded as
text, a failing store write is logged, and a span that cannot be started leaves the
function to run untraced. The traced code's own exceptions propagate unchanged. Errors in the arguments of these functions (an unknown state, an
unsupported tracking URI) do raise, as `InvalidParameterError`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tui_eval.entities import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
    LiveSpan,
    SpanAttributeKey,
    SpanEvent,
    SpanType,
    Trace,
    TraceState,
)
from tui_eval.entities import ids
from tui_eval.errors import InvalidParameterError
from tui_eval.tracing import provider, recorder, summary
from tui_eval.tracing.encoding import clean_text, dump_value
from tui_eval.tracing.provider import Experiment, get_tracking_uri, set_tracking_uri
from tui_eval.tracing.recorder import NoOpSpan, TracedSpan

if TYPE_CHECKING:
    import pandas

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

CHUNK_EVENT_PREFIX = "mlflow.chunk.item."


# --- inputs -------------------------------------------------------------------------------


class _InputBinder:
    """Turns a call's arguments into the span inputs: parameter name to value, defaults applied.

    A first parameter named ``self`` is dropped, and so is ``cls`` when its value is a class.
    ``*args`` appear as a tuple under their name and ``**kwargs`` as a dict under theirs.
    The common case (no ``*args``/``**kwargs``, a valid call) skips `Signature.bind`.
    """

    __slots__ = ("signature", "names", "positional", "keyword", "defaults", "fast", "first")

    def __init__(self, fn: Callable[..., Any]):
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature is not None else []
        kinds = inspect.Parameter
        self.names = tuple(p.name for p in params)
        self.positional = tuple(
            p.name for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        )
        self.keyword = frozenset(
            p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        )
        self.defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        self.fast = self.signature is not None and all(
            p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD) for p in params
        )
        self.first = self.names[0] if self.names and self.names[0] in ("self", "cls") else None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if self.signature is None:
            return {"args": args, "kwargs": kwargs}
        bound = self._bind_fast(args, kwargs) if self.fast else None
        if bound is None:
            bound = self._bind_slow(args, kwargs)
            if bound is None:
                return None
        first = self.first
        if first is not None and first in bound:
            if first == "self" or isinstance(bound[first], type):
                del bound[first]
        return bound

    def _bind_fast(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if len(args) > len(self.positional):
            return None
        bound = dict(zip(self.positional, args))
        if not kwargs:
            if len(bound) == len(self.names):
                return bound
            # Positional arguments fill a prefix of the parameters; the rest take defaults.
            defaults = self.defaults
            for name in self.names[len(args):]:
                if name not in defaults:
                    return None
                bound[name] = defaults[name]
            return bound
        for key, value in kwargs.items():
            if key in bound or key not in self.keyword:
                return None
            bound[key] = value
        # Rebuild in parameter order, filling in defaults, as Signature.bind does.
        ordered = {}
        for name in self.names:
            if name in bound:
                ordered[name] = bound[name]
            elif name in self.defaults:
                ordered[name] = self.defaults[name]
            else:
                return None
        return ordered

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        try:
            bound_arguments = self.signature.bind(*args, **kwargs)  # type: ignore[union-attr]
        except TypeError:
            # The call itself raises the same TypeError; the span records it.
            return None
        bound_arguments.apply_defaults()
        return dict(bound_arguments.arguments)


# --- the decorator ------------------------------------------------------------------------


class _SpanSpec:
    __slots__ = ("name", "span_type", "attributes", "function_name", "function_name_json", "binder", "output_reducer")

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None,
        span_type: str,
        attributes: dict[str, Any] | None,
        output_reducer: Callable[[list[Any]], Any] | None,
    ):
        function_name = getattr(fn, "__name__", None) or type(fn).__name__
        self.name = name or function_name
        self.span_type = span_type
        self.attributes = dict(attributes) if attributes else None
        self.function_name = function_name
        self.function_name_json = dump_value(function_name)
        self.binder = _InputBinder(fn)
        self.output_reducer = output_reducer

    def open(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TracedSpan | None:
        """Start the span for one call and set its inputs; None when tracing is off or fails."""
        if not provider.is_tracing_enabled():
            return None
        try:
            inputs = self.binder.bind(args, kwargs)
        except Exception:  # noqa: BLE001 - reading arguments must not break the call
            logger.debug("Could not read the arguments of %s", self.function_name, exc_info=True)
            inputs = None
        try:
            span = recorder.begin_span(self.name, self.span_type)
        except Exception:  # noqa: BLE001 - the function runs untraced
            logger.warning("Could not start a span for %s; it runs untraced", self.function_name, exc_info=True)
            return None
        attributes = span.raw_attributes
        attributes[SpanAttributeKey.FUNCTION_NAME] = self.function_name_json
        attributes[SpanAttributeKey.INPUTS] = dump_value(inputs)
        if self.attributes:
            span.set_attributes(self.attributes)
        return span


def trace(
    func: F | None = None,
    name: str | None = None,
    span_type: str = SpanType.UNKNOWN,
    attributes: dict[str, Any] | None = None,
    output_reducer: Callable[[list[Any]], Any] | None = None,
) -> F | Callable[[F], F]:
    """Record each call of a function as a span: inputs, outputs, timing and any exception.

    Use it bare (``@trace``), with arguments (``@trace(name=..., span_type=...)``), or on
    a function you do not own (``trace(fn)(*args)``). It works on functions, methods,
    classmethods and staticmethods (in either decorator order), coroutines, generators and
    async generators. A generator's chunks are recorded as ``mlflow.chunk.item.<i>``
    events and its outputs are the list of chunks, or ``output_reducer(chunks)``. An
    exception sets the span's status to ERROR, adds an ``exception`` event and propagates
    unchanged.
    """

    def decorator(fn: F) -> F:
        if isinstance(fn, (classmethod, staticmethod)):
            return type(fn)(decorator(fn.__func__))  # type: ignore[return-value]
        if not callable(fn):
            raise InvalidParameterError(
                f"trace() can only wrap a callable, got {type(fn).__name__}: decorate a function or method"
            )
        return _wrap(fn, name, span_type, attributes, output_reducer)

    if func is None:
        return decorator
    return decorator(func)


def _wrap(
    fn: Callable[..., Any],
    name: str | None,
    span_type: str,
    attributes: dict[str, Any] | None,
    output_reducer: Callable[[list[Any]], Any] | None,
) -> Callable[..., Any]:
    spec = _SpanSpec(fn, name, span_type, attributes, output_reducer)
    call = getattr(type(fn), "__call__", None) if not inspect.isroutine(fn) else None

    if inspect.isasyncgenfunction(fn) or (call is not None and inspect.isasyncgenfunction(call)):
        wrapper = _async_generator_wrapper(fn, spec)
    elif inspect.isgeneratorfunction(fn) or (call is not None and inspect.isgeneratorfunction(call)):
        wrapper = _generator_wrapper(fn, spec)
    elif inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call)):
        if output_reducer is not None:
            raise _reducer_error(spec)
        wrapper = _coroutine_wrapper(fn, spec)
    else:
        if output_reducer is not None:
            raise _reducer_error(spec)
        wrapper = _function_wrapper(fn, spec)

    try:
        functools.update_wrapper(wrapper, fn)
    except (AttributeError, TypeError):
        pass
    return wrapper


def _reducer_error(spec: _SpanSpec) -> InvalidParameterError:
    return InvalidParameterError(
        f"output_reducer was given for {spec.function_name!r}, which is not a generator: "
        "output_reducer only combines the chunks of generator functions"
    )


def _function_wrapper(fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
    def traced_function(*args: Any, **kwargs: Any) -> Any:
        span = spec.open(args, kwargs)
        if span is None:
            return fn(*args, **kwargs)
        token = recorder.set_active(span)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            recorder.reset_active(token)
            _end_with_error(span, exc)
            raise
        recorder.reset_active(token)
        _end_with_outputs(span, result)
        return result

    return traced_function


def _coroutine_wrapper(fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
    async def traced_coroutine(*args: Any, **kwargs: Any) -> Any:
        span = spec.open(args, kwargs)
        if span is None:
            return await fn(*args, **kwargs)
        token = recorder.set_active(span)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            recorder.reset_active(token)
            _end_with_error(span, exc)
            raise
        recorder.reset_active(token)
        _end_with_outputs(span, result)
        return result

    return traced_coroutine


def _generator_wrapper(fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
    # The span is active only while the generator's own code runs: between chunks the
    # consumer's code runs, and its spans must not become children of the generator's.
    def traced_generator(*args: Any, **kwargs: Any) -> Any:
        span = spec.open(args, kwargs)
        if span is None:
            return (yield from fn(*args, **kwargs))
        token = recorder.set_active(span)
        try:
            inner = fn(*args, **kwargs)
        except BaseException as exc:
            recorder.reset_active(token)
            _end_with_error(span, exc)
            raise
        recorder.reset_active(token)

        chunks: list[Any] = []
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = recorder.set_active(span)
            try:
                if to_throw is not None:
                    thrown, to_throw = to_throw, None
                    chunk = inner.throw(thrown)
                else:
                    chunk = inner.send(to_send)
            except StopIteration as stop:
                recorder.reset_active(token)
                _end_generator(span, spec, chunks)
                return stop.value
            except BaseException as exc:
                recorder.reset_active(token)
                _end_with_error(span, exc)
                raise
            recorder.reset_active(token)

            _add_chunk_event(span, len(chunks), chunk)
            chunks.append(chunk)
            try:
                to_send = yield chunk
            except GeneratorExit:
                # The consumer stopped early (break, close, garbage collection).
                token = recorder.set_active(span)
                try:
                    inner.close()
                finally:
                    recorder.reset_active(token)
                    _end_generator(span, spec, chunks)
                raise
            except BaseException as exc:
                to_throw = exc

    return traced_generator


def _async_generator_wrapper(fn: Callable[..., Any], spec: _SpanSpec) -> Callable[..., Any]:
    async def traced_async_generator(*args: Any, **kwargs: Any) -> Any:
        span = spec.open(args, kwargs)
        if span is None:
            async for chunk in fn(*args, **kwargs):
                yield chunk
            return
        token = recorder.set_active(span)
        try:
            inner = fn(*args, **kwargs)
        except BaseException as exc:
            recorder.reset_active(token)
            _end_with_error(span, exc)
            raise
        recorder.reset_active(token)

        chunks: list[Any] = []
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = recorder.set_active(span)
            try:
                if to_throw is not None:
                    thrown, to_throw = to_throw, None
                    chunk = await inner.athrow(thrown)
                else:
                    chunk = await inner.asend(to_send)
            except StopAsyncIteration:
                recorder.reset_active(token)
                _end_generator(span, spec, chunks)
                return
            except BaseException as exc:
                recorder.reset_active(token)
                _end_with_error(span, exc)
                raise
            recorder.reset_active(token)

            _add_chunk_event(span, len(chunks), chunk)
            chunks.append(chunk)
            try:
                to_send = yield chunk
            except GeneratorExit:
                token = recorder.set_active(span)
                try:
                    await inner.aclose()
                finally:
                    recorder.reset_active(token)
                    _end_generator(span, spec, chunks)
                raise
            except BaseException as exc:
                to_throw = exc

    return traced_async_generator


def _add_chunk_event(span: TracedSpan, index: int, chunk: Any) -> None:
    span.add_event(
        SpanEvent(CHUNK_EVENT_PREFIX + str(index), attributes={SpanAttributeKey.CHUNK_VALUE: dump_value(chunk)})
    )


def _end_generator(span: TracedSpan, spec: _SpanSpec, chunks: list[Any]) -> None:
    outputs: Any = chunks
    if spec.output_reducer is not None:
        try:
            outputs = spec.output_reducer(chunks)
        except Exception:  # noqa: BLE001 - a failing reducer must not break the consumer
            logger.warning(
                "output_reducer of %s raised; the span's outputs are the list of chunks",
                spec.function_name,
                exc_info=True,
            )
    _end_with_outputs(span, outputs)


def _end_with_outputs(span: TracedSpan, outputs: Any) -> None:
    try:
        span.set_outputs(outputs)
        span.end()
    except Exception:  # noqa: BLE001 - ending a span must not break the call
        logger.exception("Could not end span %r", span.name)


def _end_with_error(span: TracedSpan, exc: BaseException) -> None:
    try:
        if not isinstance(exc, GeneratorExit):
            recorder.record_exception(span, exc)
        span.end()
    except Exception:  # noqa: BLE001 - ending a span must not hide the user's exception
        logger.exception("Could not end span %r", span.name)


# --- start_span ---------------------------------------------------------------------------


class _SpanScope:
    """The context manager `start_span` returns."""

    __slots__ = ("_name", "_span_type", "_attributes", "_span", "_token")

    def __init__(self, name: str, span_type: str, attributes: dict[str, Any] | None):
        self._name = name
        self._span_type = span_type
        self._attributes = attributes
        self._span: TracedSpan | None = None
        self._token: contextvars.Token | None = None

    def __enter__(self) -> LiveSpan | NoOpSpan:
        if not provider.is_tracing_enabled():
            return NoOpSpan()
        try:
            span = recorder.begin_span(self._name, self._span_type)
        except Exception:  # noqa: BLE001 - the block runs untraced
            logger.warning("Could not start span %r; the block runs untraced", self._name, exc_info=True)
            return NoOpSpan()
        if self._attributes:
            span.set_attributes(self._attributes)
        self._span = span
        self._token = recorder.set_active(span)
        return span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        span = self._span
        if span is None:
            return False
        self._span = None
        recorder.reset_active(self._token)  # type: ignore[arg-type]
        if exc is not None:
            _end_with_error(span, exc)
        else:
            try:
                span.end()
            except Exception:  # noqa: BLE001 - ending a span must not break the block
                logger.exception("Could not end span %r", span.name)
        return False


def start_span(
    name: str = "span", span_type: str = SpanType.UNKNOWN, attributes: dict[str, Any] | None = None
) -> _SpanScope:
    """Open a span for a ``with`` block and yield it as a `LiveSpan`.

    Set inputs and outputs yourself with ``span.set_inputs(...)`` and
    ``span.set_outputs(...)``. A span opened inside another is its child; one opened at top
    level starts a new trace, which is stored when the block ends. An exception leaving the
    block marks the span ERROR and propagates unchanged.
    """
    return _SpanScope(name, span_type, attributes)


# --- the active trace ---------------------------------------------------------------------


def get_current_active_span() -> LiveSpan | None:
    """Return the span of the innermost traced call or ``with start_span`` block, or None."""
    return recorder.active_span.get()


def get_active_trace_id() -> str | None:
    """Return the id of the trace being recorded in this context, or None."""
    span = recorder.active_span.get()
    return span.trace_id if span is not None else None


def get_last_active_trace_id(thread_local: bool = False) -> str | None:
    """Return the id of the trace that finished last in this process (or in this thread)."""
    return recorder.get_last_trace_id(thread_local)


_SETTABLE_STATES = (TraceState.OK, TraceState.ERROR)


def update_current_trace(
    tags: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    client_request_id: str | None = None,
    request_preview: str | None = None,
    response_preview: str | None = None,
    state: TraceState | str | None = None,
) -> None:
    """Set tags, metadata, the client request id, previews or the final state of the active trace.

    Values that are not strings are stored as their JSON text. `state` is OK or ERROR and
    overrides the state derived from the root span's status. Outside a trace it logs a
    warning and does nothing.
    """
    parsed_state = None
    if state is not None:
        try:
            parsed_state = TraceState.parse(state)
        except ValueError:
            parsed_state = None
        if parsed_state not in _SETTABLE_STATES:
            raise InvalidParameterError(f"invalid trace state {state!r}: update_current_trace accepts 'OK' or 'ERROR'")

    span = recorder.active_span.get()
    if span is None:
        logger.warning("update_current_trace was called outside a trace; nothing was updated")
        return
    record = span._record
    if record.finished:
        logger.warning("update_current_trace: trace %s has already ended; nothing was updated", record.trace_id)
        return
    if tags:
        record.tags.update(summary.string_map(tags))
    if metadata:
        record.metadata.update(summary.string_map(metadata))
    if client_request_id is not None:
        record.client_request_id = clean_text(str(client_request_id))
    if request_preview is not None:
        record.request_preview = clean_text(str(request_preview))
    if response_preview is not None:
        record.response_preview = clean_text(str(response_preview))
    if parsed_state is not None:
        record.state = parsed_state


# --- reading traces -----------------------------------------------------------------------


def get_trace(trace_id: str, silent: bool = False) -> Trace | None:
    """Return the finished trace `trace_id` from the store, with its assessments, or None.

    A trace the store could not take (it was unreachable) is still found among the
    traces this process finished last. When nothing is found, a warning is logged
    unless `silent` is true.
    """
    try:
        found = provider.get_store().get_trace(trace_id)
    except Exception as exc:  # noqa: BLE001 - fall back to the traces kept in memory
        logger.debug("Could not read trace %s from the store: %s", trace_id, exc)
        found = None
    if found is None:
        found = recorder.get_recent_trace(trace_id)
    if found is None and not silent:
        logger.warning("Trace %s was not found in the store %s", trace_id, provider.get_store_path())
    return found


def search_traces(
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    max_results: int | None = None,
    order_by: list[str] | None = None,
    run_id: str | None = None,
    return_type: str = "pandas",
    include_spans: bool = True,
) -> pandas.DataFrame | list[Trace]:
    """Search the active store's traces; return MLflow's DataFrame (``"pandas"``) or a list of Trace.

    With no `experiment_ids`, the experiment chosen with `set_experiment` is searched, or
    every experiment when none was chosen. MLflow searches its Default experiment in that
    case, but a tui_eval store usually belongs to one project. Newest traces come first
    unless `order_by` says otherwise.
    """
    if return_type not in ("pandas", "list"):
        raise InvalidParameterError(f"invalid return_type {return_type!r}: expected 'pandas' or 'list'")
    if experiment_ids is None:
        active = provider.get_active_experiment_id()
        experiment_ids = [active] if active is not None else None
    arguments = dict(
        experiment_ids=experiment_ids,
        filter_string=filter_string,
        max_results=max_results,
        order_by=order_by,
        run_id=run_id,
        include_spans=include_spans,
    )
    store = provider.get_store()
    if return_type == "list":
        return store.search_traces(**arguments)
    # The store builds the frame from the stored JSON, skipping the entities (about twice as fast).
    return store.search_traces_frame(**arguments)


# --- assessments --------------------------------------------------------------------------


def log_assessment(trace_id: str, assessment: Assessment) -> Assessment:
    """Attach `assessment` (a Feedback or Expectation) to trace `trace_id` and store it.

    While the trace is still being recorded, the assessment is stored with it when its
    root span ends. Returns the assessment with its id assigned.
    """
    if not isinstance(assessment, Assessment):
        raise InvalidParameterError(
            f"log_assessment needs a Feedback or Expectation, got {type(assessment).__name__}"
        )
    if not trace_id:
        raise InvalidParameterError("log_assessment needs the trace_id of the trace to attach to")
    assessment.trace_id = trace_id
    if assessment.assessment_id is None:
        assessment.assessment_id = ids.new_assessment_id()
    if recorder.add_assessment_if_in_progress(trace_id, assessment):
        return assessment
    return provider.get_store().log_assessment(assessment)


def log_feedback(
    *,
    trace_id: str,
    name: str = "feedback",
    value: Any = None,
    source: AssessmentSource | None = None,
    error: BaseException | AssessmentError | None = None,
    rationale: str | None = None,
    metadata: dict[str, str] | None = None,
    span_id: str | None = None,
) -> Assessment:
    """Store a Feedback (a score, or the error that prevented one) on trace `trace_id`."""
    feedback = Feedback(
        name=name,
        value=value,
        error=error,
        source=source,
        metadata=metadata,
        span_id=span_id,
        rationale=rationale,
    )
    return log_assessment(trace_id, feedback)


def log_expectation(
    *,
    trace_id: str,
    name: str,
    value: Any,
    source: AssessmentSource | None = None,
    metadata: dict[str, str] | None = None,
    span_id: str | None = None,
) -> Assessment:
    """Store an Expectation (ground truth for scorers) on trace `trace_id`."""
    expectation = Expectation(name=name, value=value, source=source, metadata=metadata, span_id=span_id)
    return log_assessment(trace_id, expectation)


# --- store and experiment -----------------------------------------------------------------


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make `experiment_name` the experiment of new traces (created in the store if needed)."""
    return provider.set_experiment(experiment_name, experiment_id)


__all__ = [
    "Experiment",
    "get_active_trace_id",
    "get_current_active_span",
    "get_last_active_trace_id",
    "get_trace",
    "get_tracking_uri",
    "log_assessment",
    "log_expectation",
    "log_feedback",
    "search_traces",
    "set_experiment",
    "set_tracking_uri",
    "start_span",
    "trace",
    "update_current_trace",
]
