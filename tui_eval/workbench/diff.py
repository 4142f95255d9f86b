"""Compare a generation's results with the previous generation's.

A *cell* is one trace's feedback of one assessment name (all of them, if a scorer returns
several with the same name). Cells compare by value, rationale and error, never by
timestamps or ids, so re-running an unchanged scorer reports every cell unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tui_eval.workbench.results import CELL_NAME, Cell, ResultTable, cells_equal, has_repeated_names


class CellChange(str, enum.Enum):
    """The change of one cell between two generations."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NEW = "new"
    REMOVED = "removed"


@dataclass(frozen=True)
class AggregateChange:
    """One metric before and after; ``delta`` is None unless both values exist."""

    old: float | None
    new: float | None
    delta: float | None


@dataclass(frozen=True)
class GenerationDiff:
    """What changed between two generations.

    ``cells`` contains only the cells that changed, are new or were removed, keyed by
    ``(trace_id, assessment name)``. ``cell()`` returns "unchanged" for every other key.
    ``previous_generation`` is None when there was nothing to compare with, and then every
    cell counts as new.
    """

    previous_generation: int | None = None
    cells: Mapping[tuple[str, str], CellChange] = field(default_factory=dict)
    changed: int = 0
    unchanged: int = 0
    new: int = 0
    removed: int = 0
    scorers_appeared: tuple[str, ...] = ()
    scorers_vanished: tuple[str, ...] = ()
    columns_appeared: tuple[str, ...] = ()
    columns_vanished: tuple[str, ...] = ()
    aggregates: Mapping[str, AggregateChange] = field(default_factory=dict)
    changed_trace_ids: frozenset[str] = frozenset()

    def cell(self, trace_id: str, name: str) -> CellChange:
        """Return the change of the cell ``(trace_id, name)``: "unchanged" for cells not in ``cells``."""
        return self.cells.get((trace_id, name), CellChange.UNCHANGED)

    @property
    def any_change(self) -> bool:
        """Whether anything differs from the previous generation."""
        return bool(
            self.changed
            or self.new
            or self.removed
            or self.scorers_appeared
            or self.scorers_vanished
            or any(change.delta not in (0.0, None) or change.old is None or change.new is None
                   for change in self.aggregates.values())
        )

    def summary(self) -> str:
        """Describe the diff in one line for a log or a status bar: "3 changed, 97 unchanged, 0 new, 0 removed"."""
        parts = [f"{self.changed} changed", f"{self.unchanged} unchanged", f"{self.new} new", f"{self.removed} removed"]
        if self.scorers_appeared:
            parts.append("scorers added: " + ", ".join(self.scorers_appeared))
        if self.scorers_vanished:
            parts.append("scorers removed: " + ", ".join(self.scorers_vanished))
        return ", ".join(parts)


def _group_by_name(cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell[CELL_NAME], []).append(cell)
    return grouped


def _same(old: Sequence[Cell], new: Sequence[Cell]) -> bool:
    if len(old) != len(new):
        return False
    return all(cells_equal(a, b) for a, b in zip(old, new))


class DiffBuilder:
    """Build a GenerationDiff row by row while a generation streams in, so little is left at its end.

    ``add`` each trace's new cells once; ``finish`` accounts for the traces that got no new
    row and the aggregates. A trace added twice makes ``finish`` start over from the table.
    """

    def __init__(self, old: ResultTable | None):
        self.old = old
        self._old_cells: Mapping[str, tuple[Cell, ...]] = old.cells_by_trace if old is not None else {}
        self._old_signatures: Mapping[str, tuple[str, ...]] = old.signatures_by_trace if old is not None else {}
        self.cells: dict[tuple[str, str], CellChange] = {}
        self.changed = self.unchanged = self.new = self.removed = 0
        self.changed_traces: set[str] = set()
        self._seen: set[str] = set()
        self._repeated = False

    def add(self, trace_id: str, new_cells: Sequence[Cell], signature: tuple[str, ...] | None = None) -> None:
        """Compare one trace's new cells with its old ones; ``signature`` is ``ResultTable.signature``."""
        if trace_id in self._seen:
            self._repeated = True
            return
        self._seen.add(trace_id)
        old_cells = self._old_cells.get(trace_id, ())
        if signature is None:
            signature = tuple(cell[CELL_NAME] for cell in new_cells)
        repeated = has_repeated_names(signature)
        if old_cells == new_cells and old_cells:
            # Identical cells: one unchanged cell per distinct name.
            self.unchanged += len(set(signature)) if repeated else len(new_cells)
            return
        if old_cells and not repeated and self._old_signatures.get(trace_id) is signature:
            # The usual case after a save: the same scorers in the same order, one name per cell.
            # Signatures are interned, so equal ones are the same object.
            for before, after in zip(old_cells, new_cells):
                if before == after or cells_equal(before, after):
                    self.unchanged += 1
                else:
                    self.changed += 1
                    self.cells[(trace_id, after[CELL_NAME])] = CellChange.CHANGED
                    self.changed_traces.add(trace_id)
            return
        old_groups = _group_by_name(old_cells)
        new_groups = _group_by_name(new_cells)
        for name, group in new_groups.items():
            previous = old_groups.get(name)
            if previous is None:
                change = CellChange.NEW
                self.new += 1
            elif _same(previous, group):
                self.unchanged += 1
                continue
            else:
                change = CellChange.CHANGED
                self.changed += 1
            self.cells[(trace_id, name)] = change
            self.changed_traces.add(trace_id)
        for name in old_groups:
            if name not in new_groups:
                self._remove(trace_id, name)

    def _remove(self, trace_id: str, name: str) -> None:
        self.removed += 1
        self.cells[(trace_id, name)] = CellChange.REMOVED
        self.changed_traces.add(trace_id)

    def finish(
        self,
        new: ResultTable,
        *,
        old_metrics: Mapping[str, float] | None = None,
        new_metrics: Mapping[str, float] | None = None,
        old_scorers: Iterable[str] = (),
        new_scorers: Iterable[str] = (),
    ) -> GenerationDiff:
        if self._repeated or len(self._seen) != len(new):
            rebuilt = DiffBuilder(self.old)
            for trace_id, new_cells in new.iter_cells():
                rebuilt.add(trace_id, new_cells, new.signature(trace_id))
            return rebuilt.finish(
                new, old_metrics=old_metrics, new_metrics=new_metrics, old_scorers=old_scorers, new_scorers=new_scorers
            )
        old = self.old
        if old is not None:
            for trace_id in old.keys() - self._seen:
                for name in _group_by_name(old.cells(trace_id)):
                    self._remove(trace_id, name)

        old_scorer_list = list(dict.fromkeys(old_scorers))
        new_scorer_list = list(dict.fromkeys(new_scorers))
        old_columns = old.assessment_names() if old is not None else []
        new_columns = new.assessment_names()
        old_metrics = dict(old_metrics or {})
        new_metrics = dict(new_metrics or {})
        aggregates = {}
        for key in dict.fromkeys([*old_metrics, *new_metrics]):
            before = old_metrics.get(key)
            after = new_metrics.get(key)
            delta = after - before if before is not None and after is not None else None
            aggregates[key] = AggregateChange(before, after, delta)

        return GenerationDiff(
            previous_generation=old.generation if old is not None else None,
            cells=self.cells,
            changed=self.changed,
            unchanged=self.unchanged,
            new=self.new,
            removed=self.removed,
            scorers_appeared=tuple(name for name in new_scorer_list if name not in old_scorer_list)
            if old is not None
            else (),
            scorers_vanished=tuple(name for name in old_scorer_list if name not in new_scorer_list),
            columns_appeared=tuple(name for name in new_columns if name not in old_columns) if old is not None else (),
            columns_vanished=tuple(name for name in old_columns if name not in new_columns),
            aggregates=aggregates,
            changed_trace_ids=frozenset(self.changed_traces),
        )


def diff_results(
    old: ResultTable | None,
    new: ResultTable,
    *,
    old_metrics: Mapping[str, float] | None = None,
    new_metrics: Mapping[str, float] | None = None,
    old_scorers: Iterable[str] = (),
    new_scorers: Iterable[str] = (),
) -> GenerationDiff:
    """Compare ``new`` with ``old`` cell by cell, scorer by scorer and metric by metric."""
    builder = DiffBuilder(old)
    for trace_id, new_cells in new.iter_cells():
        builder.add(trace_id, new_cells, new.signature(trace_id))
    return builder.finish(
        new, old_metrics=old_metrics, new_metrics=new_metrics, old_scorers=old_scorers, new_scorers=new_scorers
    )
