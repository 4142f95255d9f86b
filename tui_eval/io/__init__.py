"""Import and export of traces: MLflow trace JSON files, folders of them, and JSONL."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tui_eval.entities.trace import Trace
from tui_eval.io.mlflow_json import (
    ImportProblem,
    ReadTrace,
    export_format,
    export_traces,
    read_trace_file,
    read_traces,
    trace_from_document,
    write_jsonl,
)
from tui_eval.store import Store

# Traces fetched from the store per query while exporting, to keep memory flat.
EXPORT_CHUNK = 500


@dataclass
class ImportReport:
    """The result of an import: the ids of the traces written and the documents skipped."""

    trace_ids: list[str] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return len(self.trace_ids)


def import_traces(store: Store, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> ImportReport:
    """Read every trace in ``paths`` (files or folders) into ``store``; bad documents are reported and skipped."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    report = ImportReport()
    origins: dict[int, ReadTrace] = {}

    def traces() -> Iterator[Trace]:
        for path in paths:
            for item in read_traces(path):
                if isinstance(item, ImportProblem):
                    report.problems.append(item)
                    continue
                origins[id(item.trace)] = item
                yield item.trace

    def skipped(trace: Trace, error: Exception) -> None:
        origin = origins.pop(id(trace), None)
        source, location = (origin.source, origin.location) if origin else ("?", None)
        report.problems.append(ImportProblem(source, location, f"cannot store the trace: {error}"))

    seen: set[str] = set()

    def written(trace: Trace) -> None:
        # A trace read twice (a file and a JSONL copy of it) is stored once and counted once.
        if trace.info.trace_id not in seen:
            seen.add(trace.info.trace_id)
            report.trace_ids.append(trace.info.trace_id)
        origins.pop(id(trace), None)

    store.log_traces(traces(), on_error=skipped, on_written=written)
    return report


def iter_store_traces(
    store: Store,
    *,
    filter_string: str | None = None,
    run_id: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int | None = None,
) -> Iterator[Trace]:
    """Yield the matching stored traces a chunk at a time, in search order."""
    trace_ids = store.search_trace_ids(filter_string=filter_string, run_id=run_id, order_by=order_by, max_results=max_results)
    for start in range(0, len(trace_ids), EXPORT_CHUNK):
        yield from store.get_traces(trace_ids[start : start + EXPORT_CHUNK])


def export_store(
    store: Store,
    destination: str | os.PathLike[str],
    *,
    format: str | None = None,  # noqa: A002
    filter_string: str | None = None,
    run_id: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int | None = None,
) -> int:
    """Export the matching stored traces (see ``export_traces`` for the formats); return how many."""
    traces = iter_store_traces(
        store, filter_string=filter_string, run_id=run_id, order_by=order_by, max_results=max_results
    )
    return export_traces(traces, destination, format)


__all__ = [
    "ImportProblem",
    "ImportReport",
    "ReadTrace",
    "export_format",
    "export_store",
    "export_traces",
    "import_traces",
    "iter_store_traces",
    "read_trace_file",
    "read_traces",
    "trace_from_document",
    "write_jsonl",
]
