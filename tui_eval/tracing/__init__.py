"""Tracing: record an app's calls as MLflow-compatible traces in the tui_eval store.

`trace` and `start_span` record spans; `provider` picks the store; `encoding` turns any
Python value into the JSON text stored in span attributes.
"""

from tui_eval.tracing.fluent import (
    Experiment,
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
