"""A generation's scores in a compact form, turned into Feedback objects only when read.

A worker sends each score as a *cell*: a plain tuple (see the ``CELL_*`` indexes) that pickles
about a thousand times faster than a Feedback and takes a tenth of the memory. A session of
100,000 traces and three scorers holds 300,000 cells per generation, and the parent process
(which also runs the TUI) must diff, count and aggregate them within a blink, so it works on
cells throughout. ``ResultTable`` presents them as the ``trace_id -> list[Feedback]`` mapping
the session API promises and builds the Feedback objects of a trace on first access.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tui_eval.entities.assessment import AssessmentError, AssessmentSource, Feedback

# Metadata keys on every assessment the workbench writes.
GENERATION_KEY = "tui_eval.generation"
MODULE_HASH_KEY = "tui_eval.moduleHash"

# Error codes of the cells the workbench writes itself when a call could not finish.
TIMEOUT_ERROR_CODE = "SCORER_TIMEOUT"
CRASH_ERROR_CODE = "SCORER_CRASHED"

# Positions inside a cell tuple.
CELL_NAME = 0
CELL_VALUE = 1
CELL_RATIONALE = 2
CELL_ERROR_CODE = 3
CELL_ERROR_MESSAGE = 4
CELL_STACK_TRACE = 5
CELL_METADATA = 6
CELL_SOURCE_TYPE = 7
CELL_SOURCE_ID = 8
CELL_SPAN_ID = 9
# A float the value adds to aggregates, or the count it goes to ("n_nan", "n_none", "n_error", "n_other").
CELL_OUTCOME = 10

Cell = tuple[Any, ...]

_PLAIN_TYPES = (bool, int, float, str, type(None))


def cell_from_feedback(feedback: Feedback, outcome: float | str) -> Cell:
    """Pack a Feedback into a cell; values that do not pickle plainly become JSON-compatible values."""
    value = feedback.value
    if not isinstance(value, _PLAIN_TYPES):
        from tui_eval.tracing.encoding import to_jsonable

        value = to_jsonable(value)
    error = feedback.error
    metadata = feedback.metadata
    if metadata:
        metadata = {str(key): str(item) for key, item in metadata.items()}
    source = feedback.source
    return (
        str(feedback.name),
        value,
        None if feedback.rationale is None else str(feedback.rationale),
        error.error_code if error is not None else None,
        error.error_message if error is not None else None,
        error.stack_trace if error is not None else None,
        metadata or None,
        source.source_type if source is not None else "CODE",
        source.source_id if source is not None else "default",
        feedback.span_id,
        outcome,
    )


def error_cell(scorer_name: str, error_code: str, message: str) -> Cell:
    """A cell for a call that could not finish (timeout, crashed worker), written by the workbench."""
    return (scorer_name, None, None, error_code, message, None, None, "CODE", scorer_name, None, "n_error")


def cell_is_failure(cell: Cell) -> bool:
    """Whether a cell counts as failed: an error, False, or the string "no" (any case)."""
    if cell[CELL_ERROR_CODE] is not None:
        return True
    value = cell[CELL_VALUE]
    if value is False:
        return True
    return isinstance(value, str) and value.strip().lower() == "no"


def cell_comparison_key(cell: Cell) -> tuple[Any, ...]:
    """The parts of a cell a diff compares: value, rationale and error (never times or traces)."""
    value = cell[CELL_VALUE]
    if isinstance(value, float) and math.isnan(value):
        value = "\0nan"  # NaN never equals itself; two NaN cells count as unchanged.
    return (value, cell[CELL_RATIONALE], cell[CELL_ERROR_CODE], cell[CELL_ERROR_MESSAGE])


def feedback_from_cell(
    cell: Cell, trace_id: str, *, generation: int | None, module_hash: str | None, create_time_ms: int | None
) -> Feedback:
    """Unpack a cell into a Feedback carrying the workbench's generation and module hash metadata."""
    metadata = dict(cell[CELL_METADATA] or {})
    if generation is not None:
        metadata[GENERATION_KEY] = str(generation)
    if module_hash:
        metadata[MODULE_HASH_KEY] = module_hash
    error = None
    if cell[CELL_ERROR_CODE] is not None:
        error = AssessmentError(cell[CELL_ERROR_CODE], cell[CELL_ERROR_MESSAGE], cell[CELL_STACK_TRACE])
    return Feedback(
        name=cell[CELL_NAME],
        value=cell[CELL_VALUE],
        error=error,
        source=AssessmentSource(cell[CELL_SOURCE_TYPE] or "CODE", cell[CELL_SOURCE_ID] or "default"),
        trace_id=trace_id,
        metadata=metadata or None,
        span_id=cell[CELL_SPAN_ID],
        rationale=cell[CELL_RATIONALE],
        create_time_ms=create_time_ms,
        _allow_empty=True,
    )


class ResultTable(Mapping[str, list[Feedback]]):
    """Scores keyed by trace id: compact cells inside, a ``list[Feedback]`` per trace when read.

    ``none_counts`` counts, per scorer name, the calls that returned None (no Feedback), which
    ``counts()`` reports as ``n_none``. A table grows while its generation streams in
    (``add``); readers on other threads see each trace either whole or not at all.
    """

    def __init__(
        self,
        generation: int | None = None,
        module_hash: str | None = None,
        *,
        create_time_ms: int | None = None,
    ):
        self.generation = generation
        self.module_hash = module_hash
        self.create_time_ms = create_time_ms
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._none: dict[str, tuple[str, ...]] = {}
        self._feedback: dict[str, list[Feedback]] = {}

    # -- building ---------------------------------------------------------------------------

    def add(self, trace_id: str, cells: Iterable[Cell], none_names: Iterable[str] = ()) -> None:
        """Set the cells of one trace (replacing any it had)."""
        self._cells[trace_id] = tuple(cells)
        names = tuple(none_names)
        if names:
            self._none[trace_id] = names
        else:
            self._none.pop(trace_id, None)
        self._feedback.pop(trace_id, None)

    def update(self, other: ResultTable) -> None:
        """Copy every trace of ``other`` into this table."""
        for trace_id, cells in other.iter_cells():
            self.add(trace_id, cells, other.none_names(trace_id))

    def copy(self) -> ResultTable:
        table = ResultTable(self.generation, self.module_hash, create_time_ms=self.create_time_ms)
        table._cells = dict(self._cells)
        table._none = dict(self._none)
        return table

    # -- Mapping ----------------------------------------------------------------------------

    def __getitem__(self, trace_id: str) -> list[Feedback]:
        feedbacks = self._feedback.get(trace_id)
        if feedbacks is None:
            cells = self._cells[trace_id]
            feedbacks = [
                feedback_from_cell(
                    cell,
                    trace_id,
                    generation=self.generation,
                    module_hash=self.module_hash,
                    create_time_ms=self.create_time_ms,
                )
                for cell in cells
            ]
            self._feedback[trace_id] = feedbacks
        return list(feedbacks)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._cells))

    def __len__(self) -> int:
        return len(self._cells)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._cells

    def __repr__(self) -> str:
        return f"ResultTable(generation={self.generation!r}, traces={len(self._cells)})"

    # -- compact access ---------------------------------------------------------------------

    def cells(self, trace_id: str) -> tuple[Cell, ...]:
        """The cells of one trace (empty if it has none)."""
        return self._cells.get(trace_id, ())

    def none_names(self, trace_id: str) -> tuple[str, ...]:
        """The scorers that returned None for one trace."""
        return self._none.get(trace_id, ())

    def iter_cells(self) -> Iterator[tuple[str, tuple[Cell, ...]]]:
        return iter(list(self._cells.items()))

    def assessment_names(self) -> list[str]:
        """Every assessment name in the table, in first-seen order."""
        names: dict[str, None] = {}
        for cells in self._cells.values():
            for cell in cells:
                names[cell[CELL_NAME]] = None
        return list(names)

    def source_names(self) -> list[str]:
        """The scorer names behind the cells (their source ids), in first-seen order."""
        names: dict[str, None] = {}
        for cells in self._cells.values():
            for cell in cells:
                names[cell[CELL_SOURCE_ID] or cell[CELL_NAME]] = None
        for none_names in self._none.values():
            names.update(dict.fromkeys(none_names))
        return list(names)

    def collect_values(self) -> tuple[dict[str, list[float]], dict[str, dict[str, int]]]:
        """Group the cells by name into aggregatable floats and per-name counts.

        The counts have the keys of ``tui_eval.genai.aggregation.COUNT_KEYS``; calls that
        returned None count as ``n_none`` under their scorer's name.
        """
        from tui_eval.genai.aggregation import COUNT_KEYS

        values: dict[str, list[float]] = {}
        counts: dict[str, dict[str, int]] = {}
        for cells in self._cells.values():
            for cell in cells:
                name = cell[CELL_NAME]
                bucket = counts.get(name)
                if bucket is None:
                    bucket = counts[name] = dict.fromkeys(COUNT_KEYS, 0)
                    values[name] = []
                outcome = cell[CELL_OUTCOME]
                if type(outcome) is float:
                    values[name].append(outcome)
                    bucket["n_scored"] += 1
                else:
                    bucket[outcome] += 1
        for none_names in self._none.values():
            for name in none_names:
                bucket = counts.get(name)
                if bucket is None:
                    bucket = counts[name] = dict.fromkeys(COUNT_KEYS, 0)
                    values[name] = []
                bucket["n_none"] += 1
        return values, counts

    def to_feedback(self) -> Iterator[Feedback]:
        """Every Feedback of the table, trace by trace (built fresh, not cached)."""
        for trace_id, cells in self._cells.items():
            for cell in cells:
                yield feedback_from_cell(
                    cell,
                    trace_id,
                    generation=self.generation,
                    module_hash=self.module_hash,
                    create_time_ms=self.create_time_ms,
                )


class OverlayResults(Mapping[str, list[Feedback]]):
    """The session's current view: a running generation's scores over the last finished ones."""

    def __init__(self, current: ResultTable | None, previous: ResultTable | None):
        self._current = current
        self._previous = previous

    def _table_for(self, trace_id: str) -> ResultTable | None:
        if self._current is not None and trace_id in self._current:
            return self._current
        if self._previous is not None and trace_id in self._previous:
            return self._previous
        return None

    def __getitem__(self, trace_id: str) -> list[Feedback]:
        table = self._table_for(trace_id)
        if table is None:
            raise KeyError(trace_id)
        return table[trace_id]

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for table in (self._current, self._previous):
            if table is not None:
                seen.update(dict.fromkeys(table))
        return iter(seen)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, trace_id: object) -> bool:
        return isinstance(trace_id, str) and self._table_for(trace_id) is not None

