"""Read ``evaluate``'s ``data`` into rows and check it before anything runs.

Accepted: a list of dicts, a list of Trace, a pandas DataFrame (including the one
``search_traces`` returns, or any subset of its columns with ``trace``), or an object with
``to_df()`` such as an evaluation dataset. Missing and NaN cells become None (``inputs``,
``outputs``) or ``{}`` (``expectations``), so scorers never receive NaN.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tui_eval.entities import Expectation, Trace
from tui_eval.errors import InvalidParameterError, TraceFormatError

# The columns evaluate reads; others (a search_traces frame's spans, state, ...) are ignored.
INPUTS = "inputs"
OUTPUTS = "outputs"
EXPECTATIONS = "expectations"
TAGS = "tags"
TRACE = "trace"
# search_traces frames hold the root span's inputs and outputs under these names.
REQUEST = "request"
RESPONSE = "response"
ASSESSMENTS = "assessments"


@dataclass(slots=True)
class Row:
    """One row of evaluation data, with missing cells already made None or ``{}``."""

    index: int
    inputs: Any = None
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    trace: Trace | None = None
    # Whether the data gave the value itself, rather than leaving it to the trace.
    has_inputs: bool = False
    has_outputs: bool = False
    has_expectations: bool = False


def is_missing(value: Any) -> bool:
    """Tell whether a cell is empty: None, NaN, or pandas' NA/NaT."""
    if value is None:
        return True
    if type(value) is float:
        return math.isnan(value)
    module = type(value).__module__
    if module.startswith("pandas") or module == "numpy":
        try:
            import pandas

            result = pandas.isna(value)
        except (ImportError, TypeError, ValueError):
            return False
        return result is True or (hasattr(result, "item") and getattr(result, "ndim", 1) == 0 and bool(result))
    return False


def read_rows(data: Any) -> list[Row]:
    """Turn ``data`` into rows; raises ``InvalidParameterError`` when it cannot be evaluated."""
    records, columns = _records(data)
    if not records:
        raise InvalidParameterError(
            "the evaluation data is empty: pass at least one row (a dict with 'inputs', or a trace)"
        )
    if INPUTS not in columns and TRACE not in columns:
        raise InvalidParameterError(
            f"the evaluation data has neither an 'inputs' nor a 'trace' column (it has: "
            f"{', '.join(sorted(map(str, columns))) or 'no columns'}): give each row its inputs, "
            "or pass traces (a list of Trace or a search_traces DataFrame)"
        )
    return [_read_row(index, record) for index, record in enumerate(records)]


def _records(data: Any) -> tuple[list[dict[str, Any]], set[str]]:
    """Return the data as a list of dicts with the set of keys seen."""
    if hasattr(data, "to_df") and not _is_dataframe(data):
        data = data.to_df()
    elif hasattr(data, "toPandas") and not _is_dataframe(data):
        # NOTE: Spark DataFrames are converted without being tested here (pyspark is not installed).
        data = data.toPandas()
    if _is_dataframe(data):
        return _frame_records(data)
    if isinstance(data, (list, tuple)):
        if data and all(isinstance(item, Trace) for item in data):
            return [{TRACE: item} for item in data], {TRACE}
        columns: set[str] = set()
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvalidParameterError(
                    f"invalid evaluation data: item {position} is a {type(item).__name__}, but every item "
                    "of a list must be a dict (with 'inputs', 'outputs', 'expectations', ...) or every item a Trace"
                )
            columns.update(item)
        return list(data), columns
    raise InvalidParameterError(
        f"invalid evaluation data of type {type(data).__name__}: pass a list of dicts, a list of Trace, "
        "or a pandas DataFrame (for example the one search_traces returns)"
    )


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns") and hasattr(data, "iloc")


def _frame_records(frame: Any) -> tuple[list[dict[str, Any]], set[str]]:
    wanted = [name for name in (INPUTS, OUTPUTS, EXPECTATIONS, TAGS, TRACE, REQUEST, RESPONSE) if name in frame.columns]
    if TRACE not in frame.columns:
        # Without traces, request/response/assessments are ordinary columns with no meaning here.
        wanted = [name for name in wanted if name not in (REQUEST, RESPONSE)]
    lists = {name: frame[name].tolist() for name in wanted}
    records = [{name: lists[name][position] for name in wanted} for position in range(len(frame))]
    return records, set(frame.columns)


def _read_row(index: int, record: dict[str, Any]) -> Row:
    row = Row(index)
    trace = _read_trace(index, record.get(TRACE))
    row.trace = trace

    if INPUTS in record and not is_missing(record[INPUTS]):
        row.inputs = _parse_inputs(record[INPUTS])
        row.has_inputs = True
    elif trace is not None:
        row.inputs = _cell_or_none(record.get(REQUEST)) if REQUEST in record else _root_value(trace, "inputs")
    if trace is None and not isinstance(row.inputs, dict):
        raise InvalidParameterError(
            f"invalid inputs in row {index}: expected a dict of field names to values such as "
            f"{{'question': '...'}}, got {_describe(record.get(INPUTS))}"
        )

    if OUTPUTS in record:
        row.outputs = _cell_or_none(record[OUTPUTS])
        row.has_outputs = True
    elif trace is not None:
        row.outputs = _cell_or_none(record.get(RESPONSE)) if RESPONSE in record else _root_value(trace, "outputs")

    expectations = record.get(EXPECTATIONS)
    if EXPECTATIONS in record and not is_missing(expectations):
        if not isinstance(expectations, dict):
            raise InvalidParameterError(
                f"invalid expectations in row {index}: expected a dict of expectation names to values such as "
                f"{{'expected_response': '...'}}, got {_describe(expectations)}"
            )
        row.expectations = dict(expectations)
        row.has_expectations = True
    elif trace is not None:
        row.expectations = trace_expectations(trace)
    else:
        row.expectations = {}

    tags = record.get(TAGS)
    if TAGS in record and not is_missing(tags):
        row.tags = _check_tags(index, tags)
    return row


def _read_trace(index: int, value: Any) -> Trace | None:
    if is_missing(value):
        return None
    if isinstance(value, Trace):
        return value
    try:
        if isinstance(value, (str, bytes)):
            return Trace.from_json(value)
        if isinstance(value, dict):
            return Trace.from_dict(value)
    except TraceFormatError as exc:
        raise InvalidParameterError(f"invalid trace in row {index}: {exc}") from exc
    raise InvalidParameterError(
        f"invalid trace in row {index}: expected a Trace, its dict or its JSON text, got {_describe(value)}"
    )


def _parse_inputs(value: Any) -> Any:
    """Return the inputs, with JSON text that encodes an object parsed into a dict."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, dict):
            return parsed
    return value


def _cell_or_none(value: Any) -> Any:
    return None if is_missing(value) else value


def _root_value(trace: Trace, which: str) -> Any:
    root = trace.data.root_span
    if root is None:
        return None
    return root.inputs if which == "inputs" else root.outputs


def trace_expectations(trace: Trace) -> dict[str, Any]:
    """Return ``{name: value}`` of a trace's valid Expectation assessments."""
    return {
        assessment.name: assessment.value
        for assessment in trace.info.assessments
        if isinstance(assessment, Expectation) and assessment.valid is not False
    }


def _check_tags(index: int, tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise InvalidParameterError(
            f"invalid tags in row {index}: expected a dict of str keys to values, got {_describe(tags)}"
        )
    for key in tags:
        if not isinstance(key, str):
            raise InvalidParameterError(
                f"invalid tags in row {index}: key {key!r} is a {type(key).__name__}; tag keys must be str"
            )
    return {key: value if isinstance(value, str) else json.dumps(value, default=str) for key, value in tags.items()}


def _describe(value: Any) -> str:
    if is_missing(value):
        return "nothing" if value is None else "NaN"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"

