"""``tui-eval score``: score stored traces headless, once or on every save, with thresholds for CI.

Results go to stdout (a table, JSON, CSV or Markdown); errors and, with ``--watch``, the
changes of each generation go to stderr. Exit status: 0 when every ``--fail-under`` threshold
is met, 1 when one is missed, 2 when the options are invalid, the module or store cannot be
loaded, or no stored trace matches ``--run`` and ``--filter``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import queue
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from tui_eval.errors import InvalidParameterError

logger = logging.getLogger(__name__)

FORMATS = ("table", "json", "csv", "markdown")
COUNT_COLUMNS = ("n_scored", "n_error", "n_none", "n_nan", "n_other")

EXIT_OK = 0
EXIT_THRESHOLD_MISSED = 1
EXIT_USAGE = 2


def add_score_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``score`` subcommand to the ``tui-eval`` parser."""
    parser = sub.add_parser(
        "score",
        help="score stored traces headless, once or on every save",
        description=(
            "Run the scorers of a Python module over stored traces and print each scorer's aggregates "
            "and counts. Exit status: 0 if every --fail-under threshold is met, 1 if one is missed, "
            "2 if the options are invalid, the module or store cannot be loaded, or no trace matches "
            "--run and --filter."
        ),
    )
    parser.add_argument("scorers", metavar="SCORERS.py", help="the Python module that defines the scorers")
    parser.add_argument(
        "--store", metavar="PATH", help="the trace store (default: $TUI_EVAL_STORE, else ./tui_eval.db)"
    )
    parser.add_argument("--run", dest="run_id", metavar="RUN_ID", help="score only the traces of this run")
    parser.add_argument(
        "--filter",
        dest="filter_string",
        metavar="EXPR",
        help="score only the traces matching this search_traces filter, e.g. \"trace.status = 'OK'\"",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--only-failed",
        action="store_true",
        help="list the failing cells (errors, False, \"no\") with their rationale or error instead of the summary",
    )
    parser.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help=(
            "exit with status 1 if METRIC is below VALUE or missing; METRIC is a metric key such as "
            "exact_match/mean, and a bare scorer name means NAME/mean (repeat the option for several)"
        ),
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="rescore on every save of the module or its helpers and print the changes, until Ctrl-C",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds one scorer call may run before its cell is marked timed out (default: 10)",
    )
    return parser


def parse_thresholds(specs: Iterable[str]) -> list[tuple[str, float]]:
    """Parse ``METRIC=VALUE`` options; a bare scorer name means its mean. Raises InvalidParameterError."""
    thresholds = []
    for spec in specs:
        metric, separator, text = spec.partition("=")
        metric = metric.strip()
        if not separator or not metric:
            raise InvalidParameterError(
                f"invalid --fail-under {spec!r}: write METRIC=VALUE, for example exact_match/mean=0.8"
            )
        try:
            value = float(text)
        except ValueError:
            raise InvalidParameterError(
                f"invalid --fail-under {spec!r}: {text!r} is not a number; write METRIC=VALUE, for example exact_match/mean=0.8"
            ) from None
        if "/" not in metric:
            metric = f"{metric}/mean"
        thresholds.append((metric, value))
    return thresholds


def check_thresholds(metrics: dict[str, float], thresholds: Sequence[tuple[str, float]]) -> list[str]:
    """Return one message per missed threshold (empty when all are met)."""
    missed = []
    for metric, minimum in thresholds:
        actual = metrics.get(metric)
        if actual is None or (isinstance(actual, float) and math.isnan(actual)):
            known = ", ".join(sorted(metrics)) or "none"
            missed.append(f"{metric} is missing (metrics: {known}); threshold {minimum:g}")
        elif actual < minimum:
            missed.append(f"{metric} = {format_number(actual)} is under the threshold {minimum:g}")
    return missed


def run_score(args: argparse.Namespace) -> int:
    """Run ``tui-eval score``; returns the exit status."""
    from tui_eval.store import default_store_path
    from tui_eval.workbench.session import Session

    if args.timeout is None or args.timeout <= 0:
        raise InvalidParameterError(f"invalid --timeout {args.timeout!r}: pass a number of seconds above 0")
    thresholds = parse_thresholds(args.fail_under)
    store_path = Path(args.store) if args.store else default_store_path()
    no_match = _describe_no_match(store_path, args)
    if no_match is not None:
        print(f"tui-eval score: {no_match}", file=sys.stderr)
        return EXIT_USAGE
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    session = Session(
        store_path,
        args.scorers,
        run_id=args.run_id,
        filter_string=args.filter_string,
        timeout=args.timeout,
        watch=args.watch,
    )
    session.subscribe(events.put)
    session.start()
    try:
        if args.watch:
            return _watch(session, events, args, thresholds)
        return _score_once(session, events, args, thresholds)
    finally:
        session.stop()


def _describe_no_match(store_path: Path, args: argparse.Namespace) -> str | None:
    """Return why no stored trace would be scored, or None when some match (or the store is missing).

    A missing store is left to the session, which reports it as a load error.
    """
    from tui_eval.store import Store

    if not store_path.is_file():
        return None
    with Store(store_path) as store:
        if store.count_traces(filter_string=args.filter_string, run_id=args.run_id) > 0:
            return None
        total = store.count_traces()
    selection = []
    if args.run_id is not None:
        selection.append(f"--run {args.run_id}")
    if args.filter_string is not None:
        selection.append(f"--filter {args.filter_string!r}")
    if not selection:
        return f"the store {store_path} contains no traces: import some with `tui-eval traces import` or pass --store"
    return (
        f"no traces match {' and '.join(selection)} in {store_path} ({total} traces stored): "
        "check the run id and the filter with `tui-eval traces list`"
    )


def _score_once(session: Any, events: queue.SimpleQueue[Any], args: argparse.Namespace, thresholds: list) -> int:
    from tui_eval.workbench.events import GenerationFinished, ReloadFailed, WorkerOutput

    while True:
        event = events.get()
        if isinstance(event, WorkerOutput):
            logger.info("scorer %s: %s", event.stream, event.line)
        elif isinstance(event, ReloadFailed):
            _print_load_error(event, sys.stderr)
            return EXIT_USAGE
        elif isinstance(event, GenerationFinished):
            break
    if not event.scorer_names:
        print(f"tui-eval score: no scorers found in {session.scorer_path}: decorate functions with @scorer "
              "or list them in SCORERS", file=sys.stderr)
        return EXIT_USAGE
    _print_report(session, event, args, sys.stdout)
    return _threshold_status(event.metrics, thresholds)


def _watch(session: Any, events: queue.SimpleQueue[Any], args: argparse.Namespace, thresholds: list) -> int:
    from tui_eval.workbench.events import FilesWatched, GenerationFinished, ReloadFailed, WorkerOutput

    status = EXIT_OK
    interrupted = threading.Event()
    # Ctrl-C sets a flag the loop checks, instead of raising KeyboardInterrupt at whatever
    # bytecode the main thread happens to run (which may be outside any try block).
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    print("tui-eval score: scoring on every save; press Ctrl-C to stop", file=sys.stderr)
    try:
        while not interrupted.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = None
            if isinstance(event, WorkerOutput):
                logger.info("scorer %s: %s", event.stream, event.line)
            elif isinstance(event, FilesWatched):
                names = ", ".join(str(path) for path in event.paths)
                print(f"tui-eval score: watching {names}", file=sys.stderr)
            elif isinstance(event, ReloadFailed):
                _print_load_error(event, sys.stderr)
                status = EXIT_USAGE
            elif isinstance(event, GenerationFinished):
                _print_changes(event, sys.stderr)
                _print_report(session, event, args, sys.stdout)
                sys.stdout.flush()
                status = _threshold_status(event.metrics, thresholds)
    finally:
        signal.signal(signal.SIGINT, previous)
    print("tui-eval score: stopped", file=sys.stderr)
    return status


def _threshold_status(metrics: dict[str, float], thresholds: Sequence[tuple[str, float]]) -> int:
    missed = check_thresholds(metrics, thresholds)
    for message in missed:
        print(f"tui-eval score: {message}", file=sys.stderr)
    return EXIT_THRESHOLD_MISSED if missed else EXIT_OK


# -- rendering --------------------------------------------------------------------------------


def format_number(value: float | None) -> str:
    """Print a metric compactly: up to four decimals, no trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def visible_text(value: Any) -> str:
    """Text safe for a terminal: newlines, tabs and other control characters are written as escapes."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    out = []
    for char in text:
        code = ord(char)
        if char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def summary_rows(metrics: dict[str, float], counts: dict[str, dict[str, int]]) -> tuple[list[str], list[list[Any]]]:
    """Build the summary's header and rows: one row per assessment name, one column per aggregation and count."""
    aggregations: dict[str, None] = {}
    names: dict[str, None] = dict.fromkeys(counts)
    for key in metrics:
        name, _, aggregation = key.rpartition("/")
        aggregations[aggregation] = None
        names.setdefault(name, None)
    header = ["scorer", *aggregations, *COUNT_COLUMNS]
    rows = []
    for name in names:
        row: list[Any] = [name]
        row.extend(metrics.get(f"{name}/{aggregation}") for aggregation in aggregations)
        bucket = counts.get(name, {})
        row.extend(bucket.get(column, 0) for column in COUNT_COLUMNS)
        rows.append(row)
    return header, rows


def failed_cells(results: Any) -> list[dict[str, Any]]:
    """List the failing cells (errors, False, "no") of a result table, in trace order."""
    from tui_eval.workbench.results import (
        CELL_ERROR_CODE,
        CELL_ERROR_MESSAGE,
        CELL_NAME,
        CELL_RATIONALE,
        CELL_VALUE,
        cell_is_failure,
    )

    failures = []
    for trace_id, cells in results.iter_cells():
        for cell in cells:
            if cell_is_failure(cell):
                failures.append(
                    {
                        "trace_id": trace_id,
                        "scorer": cell[CELL_NAME],
                        "value": cell[CELL_VALUE],
                        "error_code": cell[CELL_ERROR_CODE],
                        "detail": cell[CELL_ERROR_MESSAGE] if cell[CELL_ERROR_CODE] else cell[CELL_RATIONALE],
                    }
                )
    return failures


def _print_report(session: Any, event: Any, args: argparse.Namespace, out: TextIO) -> None:
    if args.only_failed:
        table = session.finished_results
        failures = failed_cells(table) if table is not None else []
        _print_failures(failures, args.format, out)
        return
    header, rows = summary_rows(event.metrics, event.counts)
    if args.format == "json":
        document = {
            "generation": event.generation,
            "traces": len(session.trace_ids),
            "module_hash": event.module_hash,
            "metrics": event.metrics,
            "counts": event.counts,
            "scorers": list(event.scorer_names),
        }
        out.write(json.dumps(document, indent=2, allow_nan=True) + "\n")
    elif args.format == "csv":
        _write_csv(header, rows, out)
    else:
        printable = [[_cell_text(value) for value in row] for row in rows]
        out.write(_render_table(header, printable, markdown=args.format == "markdown"))


def _print_failures(failures: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(json.dumps(failures, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    header = ["trace_id", "scorer", "value", "error_code", "detail"]
    rows = [[failure[key] for key in header] for failure in failures]
    if fmt == "csv":
        _write_csv(header, rows, out)
        return
    if not failures:
        out.write("no failing cells\n")
        return
    printable = [[visible_text("" if value is None else value) for value in row] for row in rows]
    out.write(_render_table(header, printable, markdown=fmt == "markdown"))


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format_number(value)
    return visible_text(value) if isinstance(value, str) else str(value)


def _write_csv(header: list[str], rows: list[list[Any]], out: TextIO) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    out.write(buffer.getvalue())


def _render_table(header: list[str], rows: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        escaped = [[text.replace("|", "\\|") for text in row] for row in rows]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        lines.extend("| " + " | ".join(row) + " |" for row in escaped)
        return "\n".join(lines) + "\n"
    widths = [len(name) for name in header]
    for row in rows:
        widths = [max(width, len(text)) for width, text in zip(widths, row)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def _print_changes(event: Any, out: TextIO) -> None:
    diff = event.diff
    out.write(f"generation {event.generation} finished in {event.elapsed_s:.2f} s: {diff.summary()}\n")
    for key, change in diff.aggregates.items():
        if change.old is None and change.new is not None and diff.previous_generation is None:
            continue
        if change.delta == 0.0:
            continue
        if change.delta is None:
            out.write(f"  {key}: {format_number(change.old) or '-'} -> {format_number(change.new) or '-'}\n")
        else:
            out.write(f"  {key}: {format_number(change.old)} -> {format_number(change.new)} ({change.delta:+.4g})\n")
    out.flush()


def _print_load_error(event: Any, out: TextIO) -> None:
    location = ""
    if event.path is not None:
        location = f"{event.path}:{event.line}: " if event.line else f"{event.path}: "
    out.write(f"tui-eval score: cannot load the scorers: {location}{event.message}\n")
    if event.traceback and event.traceback != event.message:
        out.write(event.traceback.rstrip() + "\n")
    out.flush()
