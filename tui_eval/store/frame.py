"""Traces as a pandas DataFrame in the layout of MLflow 3's ``search_traces``.

pandas is imported only when a frame is built, so importing the store stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tui_eval.entities.trace import Trace

if TYPE_CHECKING:
    import pandas


def dataframe_columns() -> list[str]:
    """Return MLflow 3's column order: trace_id, trace, client_request_id, state, ..., assessments."""
    return Trace.pandas_dataframe_columns()


def trace_to_row(trace: Trace) -> dict[str, Any]:
    """Return one DataFrame row; the ``trace`` cell is the JSON of ``trace.to_dict()``.

    The dict form is built once and shared by the ``trace``, ``spans`` and ``assessments``
    cells, which is what keeps a frame of thousands of traces quick to build.
    """
    data = trace.to_dict()
    info = trace.info
    return {
        "trace_id": info.trace_id,
        "trace": json.dumps(data, ensure_ascii=False),
        "client_request_id": info.client_request_id,
        "state": info.state,
        "request_time": info.request_time,
        "execution_duration": info.execution_duration,
        "request": _decode_payload(trace.data.request),
        "response": _decode_payload(trace.data.response),
        "trace_metadata": dict(info.trace_metadata),
        "tags": dict(info.tags),
        "spans": data["data"]["spans"],
        "assessments": data["info"].get("assessments", []),
    }


def traces_to_dataframe(traces: Iterable[Trace]) -> pandas.DataFrame:
    """Build the DataFrame ``search_traces`` returns: one row per trace, MLflow's columns in order.

    Every column holds the Python values of ``trace_to_row`` (object dtype), so a missing
    value stays None: pandas 3 would otherwise store strings as its ``str`` dtype and turn
    None into NaN. ``request_time`` is int64 (epoch ms), and so is ``execution_duration``
    unless some trace has none (an unfinished trace), when it keeps ints and None.
    """
    return rows_to_dataframe([trace_to_row(trace) for trace in traces])


def rows_to_dataframe(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    """Build the DataFrame from rows shaped like ``trace_to_row``'s (see ``traces_to_dataframe``)."""
    import pandas

    columns = {
        name: pandas.Series([row[name] for row in rows], dtype=object) for name in dataframe_columns()
    }
    frame = pandas.DataFrame(columns)
    frame["request_time"] = frame["request_time"].astype("int64")
    if all(row["execution_duration"] is not None for row in rows):
        frame["execution_duration"] = frame["execution_duration"].astype("int64")
    return frame


def _decode_payload(raw: str | None) -> Any:
    """Decode a root span's stored inputs or outputs; text that is not JSON is returned as is."""
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
