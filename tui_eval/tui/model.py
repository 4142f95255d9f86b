"""The trace list's state: rows, score cells, changes, the active filter and sort order.

This is plain Python with no Textual import, so every rule (what counts as changed, what a
filter matches, how a column sorts, what the summary counts) is tested without an app.
Single-line previews are computed once, when a row is created, and the full preview text
from the store is not kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui_eval.entities import Feedback
from tui_eval.genai.aggregation import classify_value
from tui_eval.tui.query import Query, row_fails
from tui_eval.tui.render import CellKind, cell_kind, cell_sort_key, one_line, same_outcome
from tui_eval.workbench.results import CELL_NAME, CELL_VALUE, Cell, cell_from_feedback

_NO_SCORES: Mapping[str, Cell] = {}
_NO_CHANGES: frozenset[str] = frozenset()

FIELD_COLUMNS = ("time", "name", "request", "duration", "state", "tokens", "spans")
SCORE_PREFIX = "score:"
# Rows counted per step of the summary's statistics: about 3 ms of work with two scorers on a 2-core EPYC VM.
STATS_CHUNK = 1000


class Row:
    """One trace in the list: summary fields as single-line previews, and its score cells.

    Scores are kept as the workbench's compact cell tuples (see tui_eval.workbench.results),
    because building a Feedback per cell is far too slow for 100,000 traces; the scores
    pane renders the cells directly. ``scores`` holds the latest cell per feedback name, ``previous`` the results of the
    generation before (None when the row was never scored before), ``changed`` the names
    whose result differs between the two.
    """

    __slots__ = (
        "trace_id",
        "request_time",
        "duration_ms",
        "state",
        "name",
        "request",
        "response",
        "tokens",
        "spans",
        "scores",
        "previous",
        "changed",
        "generation",
        "version",
    )

    def __init__(
        self,
        trace_id: str,
        request_time: int,
        duration_ms: int | None,
        state: str,
        name: str | None,
        request: str | None,
        response: str | None,
        tokens: int | None,
        spans: int,
    ):
        self.trace_id = trace_id
        self.request_time = request_time
        self.duration_ms = duration_ms
        self.state = state
        self.name = one_line(name, 80)
        self.request = one_line(request)
        self.response = one_line(response)
        self.tokens = tokens
        self.spans = spans
        self.scores: Mapping[str, Cell] = _NO_SCORES
        self.previous: Mapping[str, Cell] | None = None
        self.changed: frozenset[str] = _NO_CHANGES
        self.generation = -1
        # Bumped whenever the row's cells change, so that cached renderings are dropped.
        self.version = 0

    @classmethod
    def from_summary(cls, summary: Any) -> Row:
        """Build a row from a store ``TraceSummary``."""
        return cls(
            summary.trace_id,
            summary.request_time,
            summary.execution_duration,
            str(summary.state),
            summary.name,
            summary.request_preview,
            summary.response_preview,
            summary.total_tokens,
            summary.span_count,
        )

    def __repr__(self) -> str:
        return f"Row({self.trace_id!r}, scores={dict(self.scores)!r})"


def none_cell(name: str) -> Cell:
    """The cell shown when a scorer returned None for a trace (it produces no Feedback)."""
    return (name, None, None, None, None, None, None, "CODE", name, None, "n_none")


def _changed_names(current: Mapping[str, Cell], previous: Mapping[str, Cell] | None) -> frozenset[str]:
    if previous is None:
        return _NO_CHANGES
    changed = [name for name in previous if name not in current]
    for name, cell in current.items():
        before = previous.get(name)
        # Equal tuples are the common case and need no closer look.
        if before != cell and not same_outcome(cell, before):
            changed.append(name)
    return frozenset(changed) if changed else _NO_CHANGES


def cell_reader(results: Mapping[str, Sequence[Feedback]]) -> Callable[[str], tuple[Cell, ...]]:
    """Return a function that reads one trace's cells from ``results`` (see ``trace_cells``)."""
    cells_of = getattr(results, "cells", None)
    none_names_of = getattr(results, "none_names", None)
    if callable(cells_of) and not callable(none_names_of):
        return cells_of
    return lambda trace_id: trace_cells(results, trace_id)


def trace_cells(results: Mapping[str, Sequence[Feedback]], trace_id: str) -> tuple[Cell, ...]:
    """The cells of one trace in a results mapping.

    The workbench's result tables hand out their cells directly (a ``ResultTable`` also
    names the scorers that returned None); any other mapping of Feedback lists is converted
    cell by cell.
    """
    cells_of = getattr(results, "cells", None)
    if callable(cells_of):
        cells = tuple(cells_of(trace_id))
        none_names_of = getattr(results, "none_names", None)
        none_names = none_names_of(trace_id) if callable(none_names_of) else ()
        if none_names:
            cells += tuple(none_cell(name) for name in none_names)
        return cells
    return tuple(
        cell_from_feedback(feedback, classify_value(feedback))
        for feedback in results[trace_id]
        if feedback.valid is not False
    )


def _row_sort_key(column: str):
    if column == "time":
        return lambda row: (row.request_time, row.trace_id)
    if column == "name":
        return lambda row: row.name.lower()
    if column == "request":
        return lambda row: row.request.lower()
    if column == "duration":
        return lambda row: (row.duration_ms is None, row.duration_ms or 0)
    if column == "state":
        return lambda row: row.state
    if column == "tokens":
        return lambda row: (row.tokens is None, row.tokens or 0)
    if column == "spans":
        return lambda row: row.spans
    if column.startswith(SCORE_PREFIX):
        name = column[len(SCORE_PREFIX):]
        return lambda row: cell_sort_key(row.scores.get(name))
    raise KeyError(column)


@dataclass
class ScorerStats:
    """Aggregates of one feedback name over every row."""

    name: str
    count: int = 0
    numbers: list[float] = field(default_factory=list, repr=False)
    passed: int = 0
    failed: int = 0
    errors: int = 0
    nones: int = 0
    nans: int = 0
    texts: int = 0
    missing: int = 0
    changed: int = 0
    # The histogram, filled by compute_stats so that drawing the summary does not walk the values.
    buckets: list[int] = field(default_factory=list, repr=False)

    @property
    def scored(self) -> int:
        return len(self.numbers)

    @property
    def mean(self) -> float | None:
        return sum(self.numbers) / len(self.numbers) if self.numbers else None

    @property
    def minimum(self) -> float | None:
        return min(self.numbers) if self.numbers else None

    @property
    def maximum(self) -> float | None:
        return max(self.numbers) if self.numbers else None

    @property
    def pass_rate(self) -> float | None:
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    def histogram(self, buckets: int = 8) -> list[int]:
        """Counts of the numeric values in ``buckets`` equal ranges between min and max."""
        if not self.numbers:
            return []
        low, high = self.minimum, self.maximum
        assert low is not None and high is not None
        if high - low < 1e-12:
            counts = [0] * buckets
            counts[buckets // 2] = len(self.numbers)
            return counts
        counts = [0] * buckets
        scale = buckets / (high - low)
        for value in self.numbers:
            counts[min(int((value - low) * scale), buckets - 1)] += 1
        return counts


class StatsCounter:
    """Aggregate each feedback name over rows fed in chunks: from the current cells, or the previous ones.

    Bools and yes/no count as 1/0 in the numbers and towards the pass rate; errors, None,
    NaN and text are counted apart and never enter a mean. Feeding in chunks lets the UI
    thread count 100,000 rows between keys instead of holding the interpreter for all of them.
    """

    def __init__(self, names: Sequence[str], *, previous: bool = False) -> None:
        self.previous = previous
        self.stats = {name: ScorerStats(name) for name in names}

    def add(self, rows: Iterable[Row]) -> None:
        previous = self.previous
        entries = list(self.stats.items())
        for row in rows:
            cells = row.previous if previous else row.scores
            if previous and cells is None:
                continue
            scored = row.generation >= 0
            changed = row.changed
            for name, entry in entries:
                cell = cells.get(name) if cells else None
                if cell is None:
                    if scored and not previous:
                        entry.nones += 1
                    else:
                        entry.missing += 1
                    continue
                entry.count += 1
                if not previous and name in changed:
                    entry.changed += 1
                kind = cell_kind(cell)
                if kind is CellKind.PASS:
                    entry.passed += 1
                    entry.numbers.append(1.0)
                elif kind is CellKind.FAIL:
                    entry.failed += 1
                    entry.numbers.append(0.0)
                elif kind is CellKind.NUMBER:
                    value = float(cell[CELL_VALUE])
                    if math.isinf(value):
                        entry.nans += 1
                    else:
                        entry.numbers.append(value)
                elif kind is CellKind.ERROR:
                    entry.errors += 1
                elif kind is CellKind.NONE:
                    entry.nones += 1
                elif kind is CellKind.NAN:
                    entry.nans += 1
                else:
                    entry.texts += 1

    def finish(self) -> dict[str, ScorerStats]:
        """Fill in the histograms and return the stats by name."""
        for entry in self.stats.values():
            entry.buckets = entry.histogram()
        return self.stats


def compute_stats(rows: Iterable[Row], names: Sequence[str], *, previous: bool = False) -> dict[str, ScorerStats]:
    """Aggregate each feedback name over ``rows`` in one go (see ``StatsCounter``)."""
    counter = StatsCounter(names, previous=previous)
    counter.add(rows)
    return counter.finish()


class TraceListModel:
    """Rows in load order, the visible ``view`` (filtered and sorted) and the score columns."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.by_id: dict[str, Row] = {}
        self.view: list[Row] = []
        self.columns: list[str] = []
        self.sort_column = "time"
        self.sort_reverse = True
        self.query: Query | None = None
        self.only_changed = False
        self.only_failures = False
        self.generation = 0
        # Names seen in the running generation, to drop vanished scorers when it ends.
        self._generation_names: list[str] = []

    # --- rows ---------------------------------------------------------------------------------

    def add_rows(self, rows: Iterable[Row]) -> None:
        """Append rows (a page of the store); the view is rebuilt by the caller."""
        for row in rows:
            if row.trace_id in self.by_id:
                continue
            self.by_id[row.trace_id] = row
            self.rows.append(row)

    def add_summaries(self, summaries: Iterable[Any]) -> None:
        self.add_rows(Row.from_summary(summary) for summary in summaries)

    @property
    def is_filtered(self) -> bool:
        return self.query is not None or self.only_changed or self.only_failures

    # --- scores -------------------------------------------------------------------------------

    def load_scores(
        self, results: Mapping[str, Sequence[Feedback]], generation: int = 0, trace_ids: Iterable[str] | None = None
    ) -> None:
        """Set scores known before any generation ran (the last ones stored); nothing counts as changed."""
        for trace_id in results if trace_ids is None else trace_ids:
            row = self.by_id.get(trace_id)
            if row is None:
                continue
            cells = {}
            for cell in trace_cells(results, trace_id):
                cells[cell[CELL_NAME]] = cell
                self._add_column(cell[CELL_NAME])
            row.scores = cells
            row.previous = None
            row.changed = _NO_CHANGES
            row.generation = generation
            row.version += 1

    def begin_generation(self, generation: int) -> None:
        self.generation = generation
        self._generation_names = []

    def apply_results(self, generation: int, results: Mapping[str, Sequence[Feedback]], trace_ids: Iterable[str] | None = None) -> list[Row]:
        """Merge results of ``generation`` (all of ``results``, or only ``trace_ids``); return the rows touched.

        The first result of a generation for a row moves the row's cells to ``previous``;
        ``changed`` then lists the names whose outcome differs (value, rationale or error),
        counting a name that appeared or vanished as changed.
        """
        touched: list[Row] = []
        generation_names = self._generation_names
        by_id = self.by_id
        read_cells = cell_reader(results)
        for trace_id in results if trace_ids is None else trace_ids:
            row = by_id.get(trace_id)
            if row is None:
                continue
            if row.generation != generation:
                if row.generation >= 0:
                    row.previous = row.scores
                row.scores = {}
                row.generation = generation
            cells = row.scores
            assert isinstance(cells, dict)
            for cell in read_cells(trace_id):
                name = cell[CELL_NAME]
                cells[name] = cell
                if name not in generation_names:
                    generation_names.append(name)
                    self._add_column(name)
            row.changed = _changed_names(cells, row.previous)
            row.version += 1
            touched.append(row)
        return touched

    def _add_column(self, name: str) -> None:
        if name not in self.columns:
            self.columns.append(name)

    def finish_generation(self, generation: int, scorer_names: Sequence[str] = ()) -> list[str]:
        """Drop columns that the finished generation no longer produced; return the dropped names.

        Columns named after a scorer then follow the order of ``scorer_names`` (the module's
        order), and other feedback names keep their order after them. Without this the order
        is whatever came first: restored scores, or the first trace a scorer returned a value for.
        """
        if generation != self.generation or not self._generation_names:
            return []
        dropped = [name for name in self.columns if name not in self._generation_names]
        kept = [name for name in self.columns if name in self._generation_names]
        position = {name: index for index, name in enumerate(scorer_names)}
        self.columns = sorted(kept, key=lambda name: position.get(name, len(position)))
        return dropped

    def changed_rows(self) -> int:
        return sum(1 for row in self.rows if row.changed)

    def stats(self) -> tuple[dict[str, ScorerStats], dict[str, ScorerStats]]:
        """Aggregates per column for the current cells and for the previous generation's."""
        steps = self.stats_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                current, previous, _ = done.value
                return current, previous

    def stats_steps(
        self, chunk: int = STATS_CHUNK
    ) -> Generator[None, None, tuple[dict[str, ScorerStats], dict[str, ScorerStats], int]]:
        """Count ``stats`` and the changed rows in steps of about ``chunk`` rows; returns ``(current, previous, changed)``.

        The caller runs the steps between other work. A row whose cells change meanwhile (a
        generation streaming in) is counted as it is when its step comes. The caller counts
        again when the generation ends.
        """
        names = list(self.columns)
        rows = list(self.rows)
        current = StatsCounter(names)
        previous = StatsCounter(names, previous=True)
        changed = 0
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            current.add(part)
            previous.add(part)
            changed += sum(1 for row in part if row.changed)
            yield
        for counter in (current, previous):
            for entry in counter.stats.values():
                entry.buckets = entry.histogram()
                yield
        return current.stats, previous.stats, changed

    # --- view ---------------------------------------------------------------------------------

    def set_query(self, query: Query | None) -> None:
        self.query = query
        self.rebuild_view()

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort the view by a column id (``time``, ``name``, …, or ``score:NAME``)."""
        _row_sort_key(column)
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else column in ("time", "duration")
        self.sort_column = column
        self.sort_reverse = reverse
        self.rebuild_view()

    def sort_columns(self) -> list[str]:
        return [*FIELD_COLUMNS, *(SCORE_PREFIX + name for name in self.columns)]

    def matches(self, row: Row) -> bool:
        if self.only_changed and not row.changed:
            return False
        if self.only_failures and not row_fails(row):
            return False
        return self.query is None or self.query(row)

    def rebuild_view(self) -> None:
        """Recompute the visible rows from the filter, the toggles and the sort order."""
        rows = [row for row in self.rows if self.matches(row)] if self.is_filtered else list(self.rows)
        column = self.sort_column
        if column.startswith(SCORE_PREFIX) and column[len(SCORE_PREFIX):] not in self.columns:
            column = self.sort_column = "time"
        # The store returns newest first, so the default order needs no sort at all.
        if not (column == "time" and self.sort_reverse and self._rows_newest_first()):
            try:
                key = _row_sort_key(column)
            except KeyError:
                key = _row_sort_key("time")
            rows.sort(key=key, reverse=self.sort_reverse)
        self.view = rows

    def _rows_newest_first(self) -> bool:
        rows = self.rows
        return all(rows[index].request_time >= rows[index + 1].request_time for index in range(len(rows) - 1))

    def index_of(self, trace_id: str) -> int | None:
        for index, row in enumerate(self.view):
            if row.trace_id == trace_id:
                return index
        return None
