"""``tui-eval traces list|show|export|import``: stored traces from the command line.

Output is plain text or JSON on stdout, always UTF-8; messages go to stderr. Trace text is
printed with control characters made visible (``\\x1b`` instead of an escape code), so a
trace cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

# Control characters (C0 except tab, DEL and C1) that a terminal would act on.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_CONTROL_IN_CELL = {**_CONTROL, 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
del _CONTROL[0x09], _CONTROL[0x0A]

LIST_COLUMNS = ("trace_id", "request_time", "state", "duration_ms", "spans", "tokens", "name", "request")


def add_traces_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``traces`` and its subcommands to the ``tui-eval`` parser."""
    parser = subparsers.add_parser("traces", help="list, show, import and export traces")
    commands = parser.add_subparsers(dest="traces_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list stored traces, newest first")
    _add_store_option(listing)
    _add_selection_options(listing)
    listing.add_argument(
        "--limit", type=int, default=50, metavar="N", help="show at most N traces (default 50; 0 shows all)"
    )
    listing.add_argument(
        "--format", choices=("table", "jsonl"), default="table", help="a text table, or one JSON object per line"
    )

    show = commands.add_parser("show", help="print one trace as MLflow trace JSON")
    _add_store_option(show)
    show.add_argument("trace_id", metavar="TRACE_ID", help="the trace's id, for example tr-0123...")

    export = commands.add_parser("export", help="write stored traces as MLflow trace JSON or JSONL")
    _add_store_option(export)
    _add_selection_options(export)
    export.add_argument(
        "destination",
        metavar="DEST",
        help="a .jsonl file (one trace per line), a .json file, a folder (one file per trace), or - for stdout (JSONL)",
    )
    export.add_argument(
        "--format", choices=("json", "jsonl", "folder"), help="override the format the destination's name implies"
    )
    export.add_argument("--limit", "--max-results", dest="max_results", type=int, metavar="N",
                        help="export at most N traces")

    imports = commands.add_parser("import", help="read MLflow trace JSON or JSONL files into the store")
    _add_store_option(imports)
    imports.add_argument(
        "paths", nargs="+", metavar="PATH", help="a trace JSON file, a JSONL file, or a folder of them"
    )
    return parser


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="PATH", help="the store file (default: $TUI_EVAL_STORE, else ./tui_eval.db)"
    )


def _add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter", dest="filter_string", metavar="FILTER", help="MLflow filter string, e.g. \"status = 'OK'\""
    )
    parser.add_argument("--run", "--run-id", dest="run_id", metavar="RUN_ID", help="only traces of this run")
    parser.add_argument(
        "--order-by",
        action="append",
        metavar="KEY",
        help="sort key such as 'timestamp_ms DESC' (repeatable; default newest first)",
    )


def run_traces(args: argparse.Namespace) -> int:
    """Run ``tui-eval traces ...``; return the exit code."""
    from tui_eval.store import default_store_path

    path = Path(args.store) if args.store else default_store_path()
    action = args.traces_command
    stdout = _utf8(sys.stdout)
    if action != "import" and not path.exists():
        print(f"tui-eval traces {action}: no store at {path}; pass --store PATH or set TUI_EVAL_STORE", file=sys.stderr)
        return 2
    from tui_eval.store import Store

    with Store(path) as store:
        if action == "list":
            return _list(store, args, stdout)
        if action == "show":
            return _show(store, args, stdout)
        if action == "export":
            return _export(store, args, stdout)
        return _import(store, args)


def _list(store: Any, args: argparse.Namespace, stdout: IO[str]) -> int:
    limit = None if args.limit == 0 else args.limit
    summaries = store.list_summaries(
        filter_string=args.filter_string, run_id=args.run_id, order_by=args.order_by, limit=limit
    )
    if args.format == "jsonl":
        for summary in summaries:
            stdout.write(json.dumps(_summary_dict(summary), ensure_ascii=False) + "\n")
    else:
        stdout.write(format_table(summaries))
    total = store.count_traces(filter_string=args.filter_string, run_id=args.run_id)
    if limit is not None and total > len(summaries):
        print(f"showing {len(summaries)} of {total} traces; pass --limit 0 to list all", file=sys.stderr)
    stdout.flush()
    return 0


def _summary_dict(summary: Any) -> dict[str, Any]:
    return {
        "trace_id": summary.trace_id,
        "request_time": summary.request_time,
        "state": summary.state,
        "execution_duration": summary.execution_duration,
        "span_count": summary.span_count,
        "total_tokens": summary.total_tokens,
        "name": summary.name,
        "request_preview": summary.request_preview,
        "response_preview": summary.response_preview,
    }


def format_table(summaries: Sequence[Any], request_width: int = 60) -> str:
    """Format trace summaries as an aligned text table with a header row."""
    rows = [LIST_COLUMNS]
    for summary in summaries:
        rows.append(
            (
                summary.trace_id,
                _format_time(summary.request_time),
                summary.state,
                "" if summary.execution_duration is None else str(summary.execution_duration),
                str(summary.span_count),
                "" if summary.total_tokens is None else str(summary.total_tokens),
                visible(summary.name or "", cell=True),
                _clip(visible(summary.request_preview or "", cell=True), request_width),
            )
        )
    widths = [max(len(row[index]) for row in rows) for index in range(len(LIST_COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _format_time(milliseconds: int) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def visible(text: str, *, cell: bool = False) -> str:
    """Return ``text`` with terminal control characters written as ``\\xNN`` escapes.

    In a table cell (``cell=True``) tabs and line breaks are escaped too, so a row stays one line.
    """
    return text.translate(_CONTROL_IN_CELL if cell else _CONTROL)


def _show(store: Any, args: argparse.Namespace, stdout: IO[str]) -> int:
    trace = store.get_trace(args.trace_id)
    if trace is None:
        print(f"tui-eval traces show: trace {args.trace_id!r} not found in {store.path}", file=sys.stderr)
        return 1
    # JSON escapes C0 controls itself; DEL and C1 controls are escaped here so the output
    # stays valid JSON and harmless to the terminal.
    text = trace.to_json(pretty=True, ensure_ascii=False)
    stdout.write(text.translate({code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}) + "\n")
    stdout.flush()
    return 0


def _export(store: Any, args: argparse.Namespace, stdout: IO[str]) -> int:
    from tui_eval.io import export_store, iter_store_traces, write_jsonl

    if args.destination == "-":
        traces = iter_store_traces(
            store,
            filter_string=args.filter_string,
            run_id=args.run_id,
            order_by=args.order_by,
            max_results=args.max_results,
        )
        count = write_jsonl(traces, stdout)
        stdout.flush()
    else:
        count = export_store(
            store,
            args.destination,
            format=args.format,
            filter_string=args.filter_string,
            run_id=args.run_id,
            order_by=args.order_by,
            max_results=args.max_results,
        )
    print(f"exported {count} trace{'s' if count != 1 else ''} to {args.destination}", file=sys.stderr)
    return 0


def _import(store: Any, args: argparse.Namespace) -> int:
    from tui_eval.io import import_traces

    report = import_traces(store, args.paths)
    for problem in report.problems:
        print(f"skipped {visible(str(problem))}", file=sys.stderr)
    summary = f"imported {report.imported} trace{'s' if report.imported != 1 else ''} into {store.path}"
    if report.problems:
        summary += f"; skipped {len(report.problems)} bad document{'s' if len(report.problems) != 1 else ''}"
    print(summary, file=sys.stderr)
    return 1 if report.problems else 0


def _utf8(stream: IO[str]) -> IO[str]:
    """Return ``stream`` set to write UTF-8, whatever the locale's encoding."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if encoding != "utf8" and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8")
    return stream
