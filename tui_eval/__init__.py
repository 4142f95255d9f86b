"""tui_eval: a terminal workbench for developing code-based scorers for LLM applications."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# MLflow-named tracing functions, so that `import tui_eval as mlflow` runs MLflow tracing code.
# They load on first use, which keeps `import tui_eval` (and `tui-eval --help`) light.
_TRACING_NAMES = (
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
)

# Subpackages reachable as attributes, as in `mlflow.genai.evaluate(...)` or
# `mlflow.openai.autolog()`; each is imported on first access.
_SUBPACKAGES = ("entities", "genai", "openai", "store", "tracing")

__all__ = ["__version__", *_TRACING_NAMES]

if TYPE_CHECKING:
    from tui_eval.tracing.fluent import (  # noqa: F401
        get_active_trace_id,
        get_current_active_span,
        get_last_active_trace_id,
        get_trace,
        get_tracking_uri,
        log_assessment,
        log_expectation,
        log_feedback,
        search_traces,
        set_experiment,
        set_tracking_uri,
        start_span,
        trace,
        update_current_trace,
    )


def __getattr__(name: str) -> Any:
    if name in _TRACING_NAMES:
        from tui_eval.tracing import fluent

        value = getattr(fluent, name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"tui_eval.{name}")
    raise AttributeError(f"module 'tui_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_TRACING_NAMES, *_SUBPACKAGES})
