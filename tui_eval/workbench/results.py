"""A generation's scores in a compact form, turned into Feedback objects only when read.

A worker sends each score as a *cell*: a plain tuple (see the ``CELL_*`` indexes). Pickling
300,000 Feedback objects took 6.6 s on a 2 vCPU EPYC VM, and 300,000 small tuples 7 ms. A
session of 100,000 traces and three scorers has 300,000 cells per generation. The parent
process (which also runs the TUI) must diff, count and aggregate them within a blink, so it
works on cells throughout. ``ResultTable`` presents them as the ``trace_id -> list[Feedback]`` mapping
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
SCORER_KEY = "tui_eval.scorer"
# A JSON list of the scorers that returned None on the trace, on the trace's first row of a
# generation, so a restored generation counts those calls as None again.
NONE_SCORERS_KEY = "tui_eval.noneScorers"
WORKBENCH_KEYS = (GENERATION_KEY, MODULE_HASH_KEY, SCORER_KEY, NONE_SCORERS_KEY)

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
# The name of the scorer that produced the cell (a scorer may return feedback of other names).
CELL_SCORER = 11

Cell = tuple[Any, ...]

_PLAIN_TYPES = (bool, int, float, str, type(None))


def cell_from_feedback(feedback: Feedback, outcome: float | str, scorer: str | None = None) -> Cell:
    """Pack a Feedback into a cell; values that do not pickle plainly become JSON-compatible values.

    ``scorer`` names the scorer that returned it (default: the feedback's source id).
    """
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
        scorer if scorer is not None else _default_scorer(feedback),
    )


def _default_scorer(feedback: Feedback) -> str:
    if feedback.source is not None:
        return feedback.source.source_id
    return feedback.name


def error_cell(scorer_name: str, error_code: str, message: str) -> Cell:
    """Build the cell of a call that could not finish (timeout, crashed worker)."""
    return (scorer_name, None, None, error_code, message, None, None, "CODE", scorer_name, None, "n_error", scorer_name)


def cell_is_failure(cell: Cell) -> bool:
    """Tell whether a cell counts as failed: an error, False, or the string "no" (any case)."""
    if cell[CELL_ERROR_CODE] is not None:
        return True
    value = cell[CELL_VALUE]
    if value is False:
        return True
    return isinstance(value, str) and value.strip().lower() == "no"


def cells_equal(before: Cell, after: Cell) -> bool:
    """Tell whether two cells have the same value, rationale and error (what a diff compares)."""
    if before == after:
        return True
    value, other = before[CELL_VALUE], after[CELL_VALUE]
    # NaN never equals itself; two NaN cells count as equal.
    if not (value == other or (value != value and other != other)):
        return False
    return (
        before[CELL_RATIONALE] == after[CELL_RATIONALE]
        and before[CELL_ERROR_CODE] == after[CELL_ERROR_CODE]
        and before[CELL_ERROR_MESSAGE] == after[CELL_ERROR_MESSAGE]
    )


def cell_comparison_key(cell: Cell) -> tuple[Any, ...]:
    """Return the parts of a cell a diff compares: value, rationale and error (never times or traces)."""
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
    if generation is not None or module_hash:
        metadata[SCORER_KEY] = cell[CELL_SCORER]
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
        self._names: dict[str, None] = {}
        self._signatures: dict[str, tuple[str, ...]] = {}
        self._seen_signatures: set[tuple[str, ...]] = set()

    # -- building ---------------------------------------------------------------------------

    def add(
        self,
        trace_id: str,
        cells: Iterable[Cell],
        none_names: Iterable[str] = (),
        signature: tuple[str, ...] | None = None,
    ) -> tuple[tuple[Cell, ...], tuple[str, ...]]:
        """Set the cells of one trace (replacing any it had); returns them as stored, with their signature.

        ``signature`` may be passed when known (the names of ``cells`` in order).
        """
        packed = cells if type(cells) is tuple else tuple(cells)
        self._cells[trace_id] = packed
        if signature is None:
            signature = tuple([cell[CELL_NAME] for cell in packed])
        interned = _SIGNATURES.get(signature) or _intern_signature(signature)
        if interned not in self._seen_signatures:
            self._seen_signatures.add(interned)
            for name in interned:
                self._names.setdefault(name, None)
        self._signatures[trace_id] = interned
        if none_names:
            self._none[trace_id] = tuple(none_names)
        elif self._none:
            self._none.pop(trace_id, None)
        if self._feedback:
            self._feedback.pop(trace_id, None)
        return packed, interned

    def update(self, other: ResultTable) -> None:
        """Copy every trace of ``other`` into this table."""
        for trace_id, cells in other.iter_cells():
            self.add(trace_id, cells, other.none_names(trace_id))

    def __getstate__(self) -> dict[str, Any]:
        # The Feedback objects built on reads are a cache; the cells rebuild them.
        return {**self.__dict__, "_feedback": {}}

    def copy(self) -> ResultTable:
        table = ResultTable(self.generation, self.module_hash, create_time_ms=self.create_time_ms)
        table._cells = dict(self._cells)
        table._none = dict(self._none)
        table._names = dict(self._names)
        table._signatures = dict(self._signatures)
        table._seen_signatures = set(self._seen_signatures)
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

    @property
    def cells_by_trace(self) -> Mapping[str, tuple[Cell, ...]]:
        """Every trace's cells; the live dict, for the workbench's hot loops (do not modify it)."""
        return self._cells

    @property
    def signatures_by_trace(self) -> Mapping[str, tuple[str, ...]]:
        """Every trace's signature (see ``signature``); the live dict (do not modify it)."""
        return self._signatures

    def signature(self, trace_id: str) -> tuple[str, ...] | None:
        """The names of a trace's cells in order, as one shared tuple: equal signatures are identical objects."""
        return self._signatures.get(trace_id)

    def none_names(self, trace_id: str) -> tuple[str, ...]:
        """The scorers that returned None for one trace."""
        return self._none.get(trace_id, ())

    def iter_cells(self) -> Iterator[tuple[str, tuple[Cell, ...]]]:
        return iter(list(self._cells.items()))

    def assessment_names(self) -> list[str]:
        """Every assessment name the table has held, in first-seen order."""
        return list(self._names)

    def scorer_names(self) -> list[str]:
        """The names of the scorers behind the cells, in first-seen order."""
        names: dict[str, None] = {}
        for cells in self._cells.values():
            for cell in cells:
                names[cell[CELL_SCORER]] = None
        for none_names in self._none.values():
            names.update(dict.fromkeys(none_names))
        return list(names)

    def collect_values(self) -> tuple[dict[str, list[float]], dict[str, dict[str, int]]]:
        """Group the cells by name into aggregatable floats and per-name counts (see ``ValueCollector``)."""
        collector = ValueCollector()
        for trace_id, cells in self._cells.items():
            collector.add(cells, self._none.get(trace_id, ()))
        return collector.values, collector.counts

    def view(self, trace_ids: Iterable[str]) -> TableView:
        """A read-only mapping over some of this table's traces (a batch of a streaming generation)."""
        return TableView(self, tuple(trace_ids))

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


# Interned name signatures (the assessment names of a trace's cells, in order), and whether
# each repeats a name. A session meets a handful of distinct signatures, one per module version.
_SIGNATURES: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_SIGNATURES = 10_000


_REPEATS: dict[tuple[str, ...], bool] = {}


def _intern_signature(signature: tuple[str, ...]) -> tuple[str, ...]:
    if len(_SIGNATURES) >= _MAX_SIGNATURES:
        _SIGNATURES.clear()
        _REPEATS.clear()
    _SIGNATURES[signature] = signature
    return signature


def has_repeated_names(signature: tuple[str, ...]) -> bool:
    """Tell whether a signature names one assessment more than once (a scorer returning several with one name)."""
    repeated = _REPEATS.get(signature)
    if repeated is None:
        repeated = _REPEATS[signature] = len(signature) > 1 and len(set(signature)) < len(signature)
    return repeated


class ValueCollector:
    """Group cells by assessment name into aggregatable floats and per-name counts, row by row.

    The counts have the keys of ``tui_eval.genai.aggregation.COUNT_KEYS``; calls that returned
    None count as ``n_none`` under their scorer's name.
    """

    def __init__(self) -> None:
        from tui_eval.genai.aggregation import COUNT_KEYS

        self._count_keys = COUNT_KEYS
        self.values: dict[str, list[float]] = {}
        self.counts: dict[str, dict[str, int]] = {}

    def _bucket(self, name: str) -> dict[str, int]:
        bucket = self.counts[name] = dict.fromkeys(self._count_keys, 0)
        self.values[name] = []
        return bucket

    def merge(self, values: Mapping[str, list[float]], counts: Mapping[str, Mapping[str, int]]) -> None:
        """Add totals another collector gathered (a worker's, for one message of rows)."""
        for name, bucket in counts.items():
            mine = self.counts.get(name)
            if mine is None:
                mine = self._bucket(name)
            for key, number in bucket.items():
                mine[key] += number
        for name, numbers in values.items():
            if numbers:
                self.values[name].extend(numbers)

    def add(self, cells: Iterable[Cell], none_names: Iterable[str] = ()) -> None:
        counts = self.counts
        for cell in cells:
            name = cell[CELL_NAME]
            bucket = counts.get(name)
            if bucket is None:
                bucket = self._bucket(name)
            outcome = cell[CELL_OUTCOME]
            if type(outcome) is float:
                self.values[name].append(outcome)
                bucket["n_scored"] += 1
            else:
                bucket[outcome] += 1
        for name in none_names:
            bucket = counts.get(name)
            if bucket is None:
                bucket = self._bucket(name)
            bucket["n_none"] += 1


class TableView(Mapping[str, list[Feedback]]):
    """Some traces of a ResultTable, read through to it."""

    def __init__(self, table: ResultTable, trace_ids: tuple[str, ...]):
        self._table = table
        self._trace_ids = trace_ids
        self._members = frozenset(trace_ids)

    def __getitem__(self, trace_id: str) -> list[Feedback]:
        if trace_id not in self._members:
            raise KeyError(trace_id)
        return self._table[trace_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._trace_ids)

    def __len__(self) -> int:
        return len(self._trace_ids)

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._members

    def cells(self, trace_id: str) -> tuple[Cell, ...]:
        """The cells of one trace of the batch (see ``ResultTable.cells``)."""
        return self._table.cells(trace_id) if trace_id in self._members else ()

    def none_names(self, trace_id: str) -> tuple[str, ...]:
        """The scorers that returned None for one trace of the batch."""
        return self._table.none_names(trace_id) if trace_id in self._members else ()

    def detached(self) -> ResultTable:
        """Copy this batch's traces, as they are now, into a table of their own (to send to another process)."""
        source = self._table
        table = ResultTable(source.generation, source.module_hash, create_time_ms=source.create_time_ms)
        for trace_id in self._trace_ids:
            cells = source.cells_by_trace.get(trace_id)
            if cells is not None:
                table.add(trace_id, cells, source.none_names(trace_id), source.signature(trace_id))
        return table


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

