"""`tui-eval generate APP_REF --data FILE`: run an app once over a dataset and store its traces.

APP_REF is ``path/to/file.py:function`` (or ``package.module:function``). FILE is JSONL,
JSON, CSV or Parquet; each row has ``inputs`` (the function's keyword arguments) and
optionally ``expectations`` and ``tags``. A row that cannot be read is reported with its
line (or row) number and left out; the other rows still run. The rows run through
``tui_eval.genai.evaluate`` with no scorers, so each becomes a trace in one run, with the
row's expectations stored on it for the scorers written later.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_eval.errors import DatasetError, InvalidParameterError, TuiEvalError

logger = logging.getLogger(__name__)

ROW_KEYS = ("inputs", "expectations", "tags")
# CSV columns named "expectations.<name>" hold single expectations when there is no
# "expectations" column of JSON objects.
CSV_EXPECTATION_PREFIX = "expectations."
SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                  ".pq": "parquet"}


class AppLoadError(TuiEvalError):
    """The APP_REF cannot be imported or does not name a callable."""


@dataclass(frozen=True)
class RowProblem:
    """A dataset row that was left out, with where it is and why."""

    location: str  # "line 7" or "row 3"
    message: str


@dataclass(frozen=True)
class LoadedRow:
    """A dataset row that passed the checks, with where it came from."""

    location: str
    record: dict[str, Any]


@dataclass(frozen=True)
class GenerateSummary:
    """Counts and timing of one generate run."""

    run_id: str
    rows_read: int
    rows_skipped: int
    traces: int
    ok: int
    errors: int
    total_tokens: int | None
    elapsed_s: float
    store_path: str


# --- the app ------------------------------------------------------------------------------


def load_app(app_ref: str) -> Callable[..., Any]:
    """Import ``path/to/file.py:function`` or ``module:function`` and return the function.

    A file's directory goes to the front of ``sys.path`` first, so the app can import the
    modules next to it.
    """
    target, separator, attribute = app_ref.rpartition(":")
    if not separator or not target or not attribute:
        raise InvalidParameterError(
            f"invalid APP_REF {app_ref!r}: write path/to/file.py:function or package.module:function"
        )
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        module = _import_file(path, app_ref)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise AppLoadError(f"cannot import module {target!r} of APP_REF {app_ref!r}: {exc}") from exc

    function: Any = module
    for part in attribute.split("."):
        try:
            function = getattr(function, part)
        except AttributeError:
            raise AppLoadError(
                f"{target} has no attribute {attribute!r} (APP_REF {app_ref!r}); check the name after the colon"
            ) from None
    if not callable(function):
        raise AppLoadError(f"{attribute} in {target} is a {type(function).__name__}, not a function (APP_REF {app_ref!r})")
    return function


def _import_file(path: Path, app_ref: str) -> Any:
    if not path.is_file():
        raise AppLoadError(f"app file {str(path)!r} not found (APP_REF {app_ref!r})")
    path = path.resolve()
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = f"tui_eval_app_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot load {path} as a Python module (APP_REF {app_ref!r})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise AppLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


# --- the dataset --------------------------------------------------------------------------


def read_dataset(path: str | Path, data_format: str | None = None) -> tuple[list[LoadedRow], list[RowProblem]]:
    """Read a dataset file into checked rows and the problems of the rows left out.

    Raises DatasetError when the file as a whole cannot be read (missing, unknown format,
    not JSON at all).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} not found")
    data_format = data_format or SUFFIX_FORMATS.get(path.suffix.lower())
    if data_format is None:
        raise DatasetError(
            f"cannot tell the format of {str(path)!r} from its suffix {path.suffix!r}: use .jsonl, .json, .csv "
            "or .parquet, or pass --format"
        )
    readers = {"jsonl": _jsonl_records, "json": _json_records, "csv": _csv_records, "parquet": _parquet_records}
    rows: list[LoadedRow] = []
    problems: list[RowProblem] = []
    for location, record in readers[data_format](path):
        if isinstance(record, RowProblem):
            problems.append(record)
            continue
        try:
            rows.append(LoadedRow(location, check_record(record)))
        except DatasetError as exc:
            problems.append(RowProblem(location, str(exc)))
    return rows, problems


def check_record(record: Any) -> dict[str, Any]:
    """Return a row as evaluate reads it; raise DatasetError saying what is wrong with it."""
    if not isinstance(record, Mapping):
        raise DatasetError(f"expected a JSON object with 'inputs', got {type(record).__name__}")
    unknown = sorted(set(record) - set(ROW_KEYS))
    if unknown:
        raise DatasetError(f"unexpected keys {unknown}: a row has 'inputs' and optionally 'expectations' and 'tags'")
    inputs = _json_object_or_value(record.get("inputs"))
    if not isinstance(inputs, Mapping):
        raise DatasetError(
            f"'inputs' must be an object of the app's argument names to values, got {_kind(inputs)}"
        )
    row: dict[str, Any] = {"inputs": dict(inputs)}
    expectations = _json_object_or_value(record.get("expectations"))
    if expectations is not None:
        if not isinstance(expectations, Mapping):
            raise DatasetError(f"'expectations' must be an object of names to values, got {_kind(expectations)}")
        row["expectations"] = dict(expectations)
    tags = _json_object_or_value(record.get("tags"))
    if tags is not None:
        if not isinstance(tags, Mapping):
            raise DatasetError(f"'tags' must be an object of names to strings, got {_kind(tags)}")
        row["tags"] = {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in tags.items()}
    return row


def check_arguments(function: Callable[..., Any], inputs: Mapping[str, Any]) -> str | None:
    """Return why ``function(**inputs)`` cannot be called, or None when it can."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters.values()
    takes_any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    names = {p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                       inspect.Parameter.KEYWORD_ONLY)}
    required = {p.name for p in parameters if p.default is inspect.Parameter.empty
                and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    unknown = sorted(set(inputs) - names)
    if unknown and not takes_any_keyword:
        return f"inputs keys {unknown} are not parameters of {_function_name(function)}{signature}"
    missing = sorted(required - set(inputs))
    if missing:
        return f"inputs lack {missing}, required by {_function_name(function)}{signature}"
    return None


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"line {number}"
            try:
                # Without its line ending, so that an error at the end of the line names a column of it.
                yield location, json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield location, RowProblem(location, f"invalid JSON: {exc.msg} at column {exc.colno}")


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if isinstance(document, Mapping) and isinstance(document.get("data"), list):
        document = document["data"]
    if not isinstance(document, list):
        raise DatasetError(f"{path} must hold a JSON array of rows (or an object with a 'data' array)")
    for number, record in enumerate(document, start=1):
        yield f"row {number}", record


def _csv_records(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for record in reader:
            location = f"line {reader.line_num}"
            try:
                yield location, _csv_row(record, columns)
            except DatasetError as exc:
                yield location, RowProblem(location, str(exc))


def _csv_row(record: Mapping[str, Any], columns: list[str]) -> dict[str, Any]:
    """Turn a CSV record into a row: JSON cells in inputs/expectations/tags columns, or flat columns.

    Without an ``inputs`` column, every column is an input except ``expectations.<name>``
    columns, which become expectations. Flat cells are strings, as CSV has no types.
    """
    if None in record:
        raise DatasetError("the line has more cells than the header has columns")
    if "inputs" in columns:
        row = {}
        for key in ROW_KEYS:
            cell = record.get(key)
            if cell in (None, ""):
                continue
            try:
                row[key] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"the {key!r} cell is not valid JSON: {exc.msg} at column {exc.colno}") from exc
        return row
    inputs = {key: value for key, value in record.items() if not key.startswith(CSV_EXPECTATION_PREFIX)}
    expectations = {
        key[len(CSV_EXPECTATION_PREFIX):]: value
        for key, value in record.items()
        if key.startswith(CSV_EXPECTATION_PREFIX) and value != ""
    }
    row = {"inputs": inputs}
    if expectations:
        row["expectations"] = expectations
    return row


def _parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is a dependency
        raise DatasetError(f"reading {path} needs pandas: {exc}") from exc
    try:
        frame = pandas.read_parquet(path)
    except ImportError as exc:
        raise DatasetError(f"reading Parquet needs pyarrow: pip install 'tui-eval[parquet]' ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DatasetError(f"{path} is not a readable Parquet file: {exc}") from exc
    columns = [str(column) for column in frame.columns]
    for number, values in enumerate(frame.itertuples(index=False, name=None), start=1):
        record = {column: _plain_cell(value) for column, value in zip(columns, values)}
        if "inputs" not in columns:
            try:
                record = _csv_row(record, columns)
            except DatasetError as exc:
                yield f"row {number}", RowProblem(f"row {number}", str(exc))
                continue
        else:
            record = {key: value for key, value in record.items() if value is not None}
        yield f"row {number}", record


def _plain_cell(value: Any) -> Any:
    """Turn a Parquet cell (numpy arrays, NaN, struct dicts) into plain Python values."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _plain_cell(item) for key, item in value.items() if _plain_cell(item) is not None}
    if isinstance(value, list):
        return [_plain_cell(item) for item in value]
    return value


def _json_object_or_value(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _function_name(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", type(function).__name__)


# --- running ------------------------------------------------------------------------------


def generate(
    app: Callable[..., Any],
    rows: list[LoadedRow],
    *,
    run_name: str | None = None,
    max_workers: int | None = None,
) -> GenerateSummary:
    """Run ``app(**inputs)`` for each row through evaluate (no scorers) and summarise the stored traces."""
    from tui_eval.genai import evaluate
    from tui_eval.tracing import provider

    if not rows:
        raise DatasetError("no usable rows: every row of the dataset was left out")
    started = time.perf_counter()
    result = evaluate(data=[row.record for row in rows], scorers=[], predict_fn=app,
                      max_workers=max_workers, run_name=run_name)
    elapsed = time.perf_counter() - started

    store = provider.get_store()
    summaries = store.list_summaries(run_id=result.run_id)
    ok = sum(1 for item in summaries if item.state == "OK")
    errors = sum(1 for item in summaries if item.state == "ERROR")
    token_counts = [item.total_tokens for item in summaries if item.total_tokens is not None]
    return GenerateSummary(
        run_id=result.run_id,
        rows_read=len(rows),
        rows_skipped=0,
        traces=len(summaries),
        ok=ok,
        errors=errors,
        total_tokens=sum(token_counts) if token_counts else None,
        elapsed_s=elapsed,
        store_path=str(provider.get_store_path()),
    )


# --- command line -------------------------------------------------------------------------


def add_generate_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `generate` subcommand to an argparse subparsers object."""
    parser = sub.add_parser(
        "generate",
        help="run an app over a dataset once and store its traces",
        description=(
            "Call APP_REF once per dataset row with the row's inputs as keyword arguments, store each "
            "call's trace with the row's expectations, and print the run id and a summary. Rows that "
            "cannot be read are reported on stderr by line number and skipped."
        ),
    )
    parser.add_argument("app_ref", metavar="APP_REF", help="the app function: path/to/file.py:function or module:function")
    parser.add_argument("--data", required=True, metavar="FILE",
                        help="dataset file: .jsonl, .json, .csv or .parquet")
    parser.add_argument("--format", choices=sorted(set(SUFFIX_FORMATS.values())), default=None,
                        help="dataset format when the file suffix does not tell")
    parser.add_argument("--run-name", default=None, help="name of the run the traces are linked to")
    parser.add_argument("--max-workers", type=int, default=None, metavar="N",
                        help="rows run at once on threads (default: TUI_EVAL_MAX_WORKERS, else 10)")
    parser.add_argument("--store", default=None, metavar="PATH",
                        help="trace store (default: TUI_EVAL_STORE, else ./tui_eval.db)")
    return parser


def run_generate(args: argparse.Namespace) -> int:
    """Run `tui-eval generate`; exit 0 when every row ran, 1 when rows were skipped or failed."""
    from tui_eval import tracing

    if args.max_workers is not None and args.max_workers < 1:
        raise InvalidParameterError(f"--max-workers must be at least 1, got {args.max_workers}")
    if args.store:
        tracing.set_tracking_uri(args.store)

    rows, problems = read_dataset(args.data, args.format)
    rows_in_file = len(rows) + len(problems)
    app = load_app(args.app_ref)
    usable: list[LoadedRow] = []
    for row in rows:
        reason = check_arguments(app, row.record["inputs"])
        if reason is None:
            usable.append(row)
        else:
            problems.append(RowProblem(row.location, reason))
    for problem in sorted(problems, key=_location_order):
        print(f"{args.data}:{problem.location}: skipped: {problem.message}", file=sys.stderr)

    summary = generate(app, usable, run_name=args.run_name, max_workers=args.max_workers)
    summary = dataclasses.replace(summary, rows_read=rows_in_file, rows_skipped=len(problems))
    print(format_summary(summary))
    return 0 if not problems and summary.errors == 0 else 1


def _location_order(problem: RowProblem) -> tuple[int, str]:
    number = problem.location.rsplit(" ", 1)[-1]
    return (int(number) if number.isdigit() else 0, problem.location)


def format_summary(summary: GenerateSummary) -> str:
    """Return the lines `tui-eval generate` prints."""
    rate = summary.traces / summary.elapsed_s if summary.elapsed_s > 0 else float("inf")
    lines = [
        f"run id: {summary.run_id}",
        f"store: {summary.store_path}",
        f"rows: {summary.rows_read} read, {summary.rows_skipped} skipped",
        f"traces: {summary.traces} stored ({summary.ok} OK, {summary.errors} ERROR) "
        f"in {summary.elapsed_s:.2f}s ({rate:.1f} rows/s)",
    ]
    if summary.total_tokens is not None:
        lines.append(f"tokens: {summary.total_tokens} total")
    return "\n".join(lines)
