"""Writes the trace list's current view (its rows and score cells) to CSV or JSON Lines."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tui_eval.errors import InvalidParameterError
from tui_eval.tui.model import Row
from tui_eval.workbench.results import CELL_ERROR_CODE, CELL_ERROR_MESSAGE, CELL_RATIONALE, CELL_VALUE

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FIELDS = ("trace_id", "request_time", "name", "request", "response", "execution_duration", "state", "total_tokens", "span_count")


def _field_values(row: Row) -> list[Any]:
    return [row.trace_id, row.request_time, row.name, row.request, row.response, row.duration_ms, row.state, row.tokens, row.spans]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_view(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> int:
    """Write ``rows`` to ``path`` in the format its extension names; return the row count.

    The request and response columns hold the single-line previews shown in the list. Each
    scorer contributes its value and, in CSV, an ``<name>.error`` column with the error code
    and message; JSON Lines rows carry ``scores: {name: {value, error_code, error_message, rationale}}``.
    """
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InvalidParameterError(
            f"cannot export to {path}: unknown extension {path.suffix!r}; use .csv or .jsonl"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if kind == "csv":
            writer = csv.writer(handle)
            header = list(FIELDS)
            for name in columns:
                header += [name, f"{name}.error"]
            writer.writerow(header)
            for row in rows:
                values = _field_values(row)
                for name in columns:
                    cell = row.scores.get(name)
                    if cell is None:
                        values += ["", ""]
                        continue
                    error = ""
                    if cell[CELL_ERROR_CODE] is not None:
                        error = f"{cell[CELL_ERROR_CODE]}: {cell[CELL_ERROR_MESSAGE] or ''}"
                    value = cell[CELL_VALUE]
                    values += ["" if value is None else value, error]
                writer.writerow(values)
        else:
            for row in rows:
                record = dict(zip(FIELDS, _field_values(row)))
                scores = {}
                for name in columns:
                    cell = row.scores.get(name)
                    if cell is None:
                        continue
                    scores[name] = {
                        "value": _json_value(cell[CELL_VALUE]),
                        "error_code": cell[CELL_ERROR_CODE],
                        "error_message": cell[CELL_ERROR_MESSAGE],
                        "rationale": cell[CELL_RATIONALE],
                    }
                record["scores"] = scores
                handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return len(rows)
