"""Call ``predict_fn`` for evaluation rows and find the trace each call produced.

``predict_fn(**inputs)`` receives each key of a row's inputs as a keyword argument. Before
any row runs, the parameters are checked against the inputs' keys. Then the function is
called once on the first row's inputs (the pre-flight call), with nothing written to the
store. A failure there stops ``evaluate`` at once, and the spans the call records tell
whether the function traces itself. A function that records no span is wrapped in
``tui_eval.trace``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tui_eval.entities import SpanType, ids
from tui_eval.errors import InvalidParameterError
from tui_eval.genai.dataset import Row
from tui_eval.genai.scorers import run_awaitable
from tui_eval.tracing import fluent, provider, recorder

logger = logging.getLogger(__name__)


def check_predict_fn(predict_fn: Callable[..., Any], rows: Sequence[Row]) -> None:
    """Check that every row's inputs can be passed to ``predict_fn`` as keyword arguments.

    Raises ``InvalidParameterError`` naming the row, its keys and the function's parameters.
    """
    if not callable(predict_fn):
        raise InvalidParameterError(
            f"predict_fn must be a function, got {type(predict_fn).__name__}: pass the app's entry point"
        )
    for row in rows:
        if not isinstance(row.inputs, dict):
            raise InvalidParameterError(
                f"invalid inputs in row {row.index} for predict_fn: expected a dict whose keys are predict_fn's "
                f"parameter names, got {type(row.inputs).__name__}"
            )

    try:
        signature = inspect.signature(predict_fn)
    except (TypeError, ValueError):
        # Some built-in callables have no readable signature; their call will tell.
        return
    parameters = list(signature.parameters.values())
    name = getattr(predict_fn, "__name__", type(predict_fn).__name__)
    if not parameters:
        raise InvalidParameterError(
            f"predict_fn {name}() takes no parameters, but it is called as predict_fn(**inputs): "
            "give it one parameter per key of the rows' inputs"
        )
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        raise InvalidParameterError(
            f"predict_fn {name} takes *args, but the inputs are passed as keyword arguments: wrap it in "
            "a function with one named parameter per input key, for example def predict(question): ..."
        )
    takes_any_keyword = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)
    named = [
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    required = {
        parameter.name
        for parameter in parameters
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    for row in rows:
        keys = set(row.inputs)
        unknown = sorted(keys - set(named))
        if unknown and not takes_any_keyword:
            example = ", ".join(sorted(keys)[:3])
            raise InvalidParameterError(
                f"the inputs of row {row.index} have the keys {_names(keys)}, but predict_fn {name} takes the "
                f"parameters {_names(named)}: each inputs key is passed as a keyword argument, so "
                f"{_names(unknown)} has no parameter to go to. Rename the keys or the parameters, for example "
                f"def {name}({example}): ..."
            )
        missing = sorted(required - keys)
        if missing:
            raise InvalidParameterError(
                f"the inputs of row {row.index} have the keys {_names(keys)}, but predict_fn {name} requires "
                f"{_names(missing)} as well: add those keys to the inputs or give the parameters defaults"
            )


def _names(names: Any) -> str:
    return "(" + ", ".join(repr(item) for item in sorted(names)) + ")" if names else "()"


def call_predict_fn(predict_fn: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    """Call ``predict_fn(**inputs)``, awaiting the result of an ``async def`` function."""
    result = predict_fn(**inputs)
    if inspect.isawaitable(result):
        # NOTE: no timeout, unlike MLflow's MLFLOW_GENAI_EVAL_ASYNC_TIMEOUT (300 s).
        return run_awaitable(result)
    return result


def preflight(predict_fn: Callable[..., Any], inputs: dict[str, Any]) -> bool:
    """Call ``predict_fn`` once without storing anything; return whether it recorded spans.

    Raises ``InvalidParameterError`` when the call fails, so evaluate stops before any row.
    """
    record = _capture_record()
    if record is None:
        context = provider.tracing_disabled()
    else:
        context = _active(record.root)
    try:
        with context:
            call_predict_fn(predict_fn, inputs)
    except Exception as exc:
        name = getattr(predict_fn, "__name__", type(predict_fn).__name__)
        raise InvalidParameterError(
            f"predict_fn {name} failed on the inputs of the first row, {_short(inputs)}: "
            f"{type(exc).__name__}: {exc}. Fix predict_fn or the data and run evaluate again; "
            "nothing was written to the store"
        ) from exc
    if record is None:
        return False
    return len(record.spans) > 1


def _capture_record() -> Any:
    """Build a parent span whose trace is never stored, so spans started under it can be counted.

    Returns its trace record, or None when the tracing internals this relies on have changed.
    """
    # NOTE: this relies on tracing internals: a span started under a parent joins the
    # parent's record, and only a root span writes to the store. If they change, the
    # pre-flight call runs with tracing off and predict_fn is always wrapped in a trace.
    try:
        record = recorder.TraceRecord(ids.new_trace_id(), provider.DEFAULT_EXPERIMENT_ID, None)
        root = recorder.TracedSpan(record, "tui_eval.preflight", SpanType.UNKNOWN, None)
        record.root = root
        record.spans.append(root)
    except (TypeError, AttributeError):
        logger.warning("Could not capture the spans of the pre-flight call; predict_fn will be wrapped in a trace")
        return None
    return record


@contextlib.contextmanager
def _active(span: Any) -> Iterator[None]:
    token = recorder.set_active(span)
    try:
        yield
    finally:
        recorder.reset_active(token)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def traced_predict_fn(predict_fn: Callable[..., Any], records_spans: bool) -> Callable[..., Any]:
    """Return ``predict_fn``, wrapped in ``tui_eval.trace`` if it records no span itself."""
    if records_spans:
        return predict_fn
    return fluent.trace(predict_fn)


def predict_row(predict_fn: Callable[..., Any], inputs: dict[str, Any]) -> tuple[Any, str | None, BaseException | None]:
    """Run one prediction; return ``(outputs, trace id, error)``.

    The trace id is the last trace finished in this thread during the call, or None if the
    call produced none. A raise is returned as the error with outputs None.
    """
    before = recorder.get_last_trace_id(thread_local=True)
    try:
        outputs = call_predict_fn(predict_fn, inputs)
        error = None
    except Exception as exc:  # noqa: BLE001 - the row keeps its error and is still scored
        outputs, error = None, exc
    after = recorder.get_last_trace_id(thread_local=True)
    return outputs, (after if after != before else None), error
