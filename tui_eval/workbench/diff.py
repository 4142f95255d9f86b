"""Compare a generation's results with the previous generation's.

A *cell* is one trace's feedback of one assessment name (all of them, if a scorer returns
several with the same name). Cells compare by value, rationale and error, never by
timestamps or ids, so re-running an unchanged scorer reports every cell unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tui_eval.workbench.results import CELL_NAME, Cell, ResultTable, cell_comparison_key


class CellChange(str, enum.Enum):
    """How one cell moved between two generations."""

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

    ``cells`` holds only the cells that changed, are new or were removed, keyed by
    ``(trace_id, assessment name)``; ``cell()`` answers "unchanged" for every other key.
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
        """How the cell ``(trace_id, name)`` changed; "unchanged" for cells not listed in ``cells``."""
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
        """One line for a log or a status bar: "3 changed, 97 unchanged, 0 new, 0 removed"."""
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
    return all(cell_comparison_key(a) == cell_comparison_key(b) for a, b in zip(old, new))


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
    old_scorer_list = list(dict.fromkeys(old_scorers))
    new_scorer_list = list(dict.fromkeys(new_scorers))
    old_metrics = dict(old_metrics or {})
    new_metrics = dict(new_metrics or {})

    cells: dict[tuple[str, str], CellChange] = {}
    counts = {CellChange.CHANGED: 0, CellChange.UNCHANGED: 0, CellChange.NEW: 0, CellChange.REMOVED: 0}
    changed_traces: set[str] = set()
    old_columns: dict[str, None] = {}
    new_columns: dict[str, None] = {}

    for trace_id, new_cells in new.iter_cells():
        old_cells = old.cells(trace_id) if old is not None else ()
        if old_cells == new_cells and old_cells:
            # Fast path: identical tuples (the common case after a save that touched one scorer).
            for name in _group_by_name(new_cells):
                counts[CellChange.UNCHANGED] += 1
                old_columns[name] = None
                new_columns[name] = None
            continue
        old_groups = _group_by_name(old_cells)
        new_groups = _group_by_name(new_cells)
        old_columns.update(dict.fromkeys(old_groups))
        new_columns.update(dict.fromkeys(new_groups))
        for name, group in new_groups.items():
            previous = old_groups.get(name)
            if previous is None:
                change = CellChange.NEW
            elif _same(previous, group):
                change = CellChange.UNCHANGED
            else:
                change = CellChange.CHANGED
            counts[change] += 1
            if change is not CellChange.UNCHANGED:
                cells[(trace_id, name)] = change
                changed_traces.add(trace_id)
        for name in old_groups:
            if name not in new_groups:
                counts[CellChange.REMOVED] += 1
                cells[(trace_id, name)] = CellChange.REMOVED
                changed_traces.add(trace_id)

    if old is not None:
        for trace_id, old_cells in old.iter_cells():
            if trace_id in new:
                continue
            for name in _group_by_name(old_cells):
                old_columns[name] = None
                counts[CellChange.REMOVED] += 1
                cells[(trace_id, name)] = CellChange.REMOVED
                changed_traces.add(trace_id)

    aggregates = {}
    for key in dict.fromkeys([*old_metrics, *new_metrics]):
        before = old_metrics.get(key)
        after = new_metrics.get(key)
        delta = after - before if before is not None and after is not None else None
        aggregates[key] = AggregateChange(before, after, delta)

    return GenerationDiff(
        previous_generation=old.generation if old is not None else None,
        cells=cells,
        changed=counts[CellChange.CHANGED],
        unchanged=counts[CellChange.UNCHANGED],
        new=counts[CellChange.NEW],
        removed=counts[CellChange.REMOVED],
        scorers_appeared=tuple(name for name in new_scorer_list if name not in old_scorer_list) if old is not None else (),
        scorers_vanished=tuple(name for name in old_scorer_list if name not in new_scorer_list),
        columns_appeared=tuple(name for name in new_columns if name not in old_columns) if old is not None else (),
        columns_vanished=tuple(name for name in old_columns if name not in new_columns),
        aggregates=aggregates,
        changed_trace_ids=frozenset(changed_traces),
    )
