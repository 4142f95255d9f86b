"""Reading and writing MLflow trace JSON: one trace per file, a folder of files, or JSONL.

Every file is read and written as UTF-8, whatever the locale. Reading never stops at a bad
document: each one that cannot be read becomes an ``ImportProblem`` naming its file and
line (JSONL) or item (a JSON array), and the rest are read.

Accepted documents: MLflow's ``Trace.to_json`` layout in every variant ``Trace.from_dict``
reads (3.6+ base64 ids, 3.5.0 hex ids, V2, the REST form, no spans), a JSON array of them,
``{"traces": [...]}``, and rows of a ``search_traces`` DataFrame written as JSON records,
whose ``trace`` cell contains the trace's JSON text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tui_eval.entities.trace import Trace
from tui_eval.errors import TraceFormatError, TuiEvalError

logger = logging.getLogger(__name__)

JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class ImportProblem:
    """A document that could not be read: where it is and why."""

    source: str
    location: str | None  # "line 7" in JSONL, "item 3" in a JSON array, None for a whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.location}" if self.location else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ReadTrace:
    """A trace read from a file, with where it came from (for reporting a later write failure)."""

    trace: Trace
    source: str
    location: str | None


def iter_trace_files(path: str | os.PathLike[str]) -> list[Path]:
    """Return the files to read for ``path``: the file itself, or a folder's JSON and JSONL files, sorted."""
    target = Path(path)
    if target.is_dir():
        return sorted(
            child for child in target.iterdir() if child.is_file() and child.suffix.lower() in JSON_SUFFIXES + JSONL_SUFFIXES
        )
    if not target.exists():
        raise TuiEvalError(f"cannot import {target}: no such file or folder")
    return [target]


def read_traces(path: str | os.PathLike[str]) -> Iterator[ReadTrace | ImportProblem]:
    """Yield every trace in ``path`` (a file or a folder), and a problem for each bad document."""
    for file in iter_trace_files(path):
        yield from read_trace_file(file)


def read_trace_file(path: Path) -> Iterator[ReadTrace | ImportProblem]:
    """Yield the traces in one file; JSONL files are read line by line."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        yield ImportProblem(source, None, f"cannot read the file: {error.strerror or error}")
        return
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from _read_lines(raw, source)
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        yield ImportProblem(source, None, f"the file is not valid UTF-8 ({error.reason} at byte {error.start})")
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            # Several JSON values one after another: read it as JSONL.
            yield from _read_lines(raw, source)
            return
        yield ImportProblem(source, f"line {error.lineno}", f"invalid JSON: {error.msg} (column {error.colno})")
        return
    if isinstance(document, dict) and isinstance(document.get("traces"), list):
        document = document["traces"]
    if isinstance(document, list):
        for index, item in enumerate(document, start=1):
            yield _read_document(item, source, f"item {index}")
        return
    yield _read_document(document, source, None)


def _read_lines(raw: bytes, source: str) -> Iterator[ReadTrace | ImportProblem]:
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        location = f"line {number}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            yield ImportProblem(source, location, f"not valid UTF-8 ({error.reason} at byte {error.start})")
            continue
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            yield ImportProblem(source, location, f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        yield _read_document(document, source, location)


def _read_document(document: Any, source: str, location: str | None) -> ReadTrace | ImportProblem:
    try:
        return ReadTrace(trace_from_document(document), source, location)
    except TraceFormatError as error:
        return ImportProblem(source, location, str(error))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        return ImportProblem(source, location, f"cannot read the trace: {type(error).__name__}: {error}")


def trace_from_document(document: Any) -> Trace:
    """Read one trace from a parsed JSON document in any accepted form (see the module docstring)."""
    if isinstance(document, dict) and "info" not in document and "trace" in document:
        inner = document["trace"]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except json.JSONDecodeError as error:
                raise TraceFormatError(f"the 'trace' cell is not valid JSON ({error.msg})") from error
        document = inner
    if not isinstance(document, dict):
        raise TraceFormatError(
            f"expected a trace object with 'info' and 'data' keys, found a JSON {type(document).__name__}"
        )
    return Trace.from_dict(document)



# --- writing ------------------------------------------------------------------------------


def export_format(destination: str | os.PathLike[str], format: str | None = None) -> str:  # noqa: A002
    """Decide how to write ``destination``: "jsonl", "json" (one file) or "folder".

    An explicit ``format`` wins. Otherwise the suffix decides, and a path without a JSON
    suffix (or an existing folder) gets one file per trace.
    """
    target = Path(destination)
    if format not in (None, "json", "jsonl", "folder"):
        raise TuiEvalError(f"invalid export format {format!r}: use json, jsonl or folder")
    if str(destination) == "-":
        return "jsonl"
    if format == "jsonl":
        return "jsonl"
    if target.is_dir() or format == "folder":
        return "folder"
    suffix = target.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in JSON_SUFFIXES or format == "json":
        return "json"
    return "folder"


def write_jsonl(traces: Iterable[Trace], stream: IO[str]) -> int:
    """Write one compact trace JSON per line to a text stream; return how many."""
    count = 0
    for trace in traces:
        stream.write(trace.to_json(ensure_ascii=False))
        stream.write("\n")
        count += 1
    return count


def export_traces(
    traces: Iterable[Trace],
    destination: str | os.PathLike[str],
    format: str | None = None,  # noqa: A002
) -> int:
    """Write traces to a JSONL file, one JSON file, or a folder of ``<trace_id>.json`` files; return how many.

    One trace in a .json file is written as a single object (MLflow's layout); several as a
    JSON array. Files are written to a temporary name first and renamed, so an interrupted
    export never leaves half a file.
    """
    kind = export_format(destination, format)
    target = Path(destination)
    if kind == "jsonl":
        with _atomic_text_file(target) as stream:
            return write_jsonl(traces, stream)
    if kind == "json":
        items = list(traces)
        with _atomic_text_file(target) as stream:
            if len(items) == 1:
                stream.write(items[0].to_json(pretty=True, ensure_ascii=False))
            else:
                stream.write(json.dumps([trace.to_dict() for trace in items], indent=2, ensure_ascii=False))
            stream.write("\n")
        return len(items)
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for trace in traces:
        with _atomic_text_file(target / f"{_file_name(trace.info.trace_id)}.json") as stream:
            stream.write(trace.to_json(pretty=True, ensure_ascii=False))
            stream.write("\n")
        count += 1
    return count


def _file_name(trace_id: str) -> str:
    """Return a safe file name for a trace id (MLflow ids are already safe)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", trace_id) or "trace"


class _atomic_text_file:
    """Open a UTF-8 temporary file beside ``path``; rename it over ``path`` on success."""

    def __init__(self, path: Path):
        self.path = path
        self.stream: IO[str] | None = None
        self.temporary: str | None = None

    def __enter__(self) -> IO[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.stream = os.fdopen(handle, "w", encoding="utf-8", newline="\n")
        return self.stream

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        assert self.stream is not None and self.temporary is not None
        self.stream.close()
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            os.unlink(self.temporary)
