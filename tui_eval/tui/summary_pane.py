"""Aggregates of every scorer over all traces, with the change since the previous generation."""

from __future__ import annotations

from collections.abc import Mapping

from textual.containers import VerticalScroll
from textual.widgets import Static

from tui_eval.tui.model import ScorerStats
from tui_eval.tui.render import render_summary


class SummaryPane(VerticalScroll, can_focus=True):
    """Per scorer: pass rate, mean, a distribution, counts of errors, None and NaN, and deltas."""

    DEFAULT_CSS = """
    SummaryPane { padding: 0 1; }
    """

    def compose(self):
        yield Static(render_summary({}, {}, rows_changed=0, total_rows=0, generation=0), id="summary-body")

    def show_stats(
        self,
        current: Mapping[str, ScorerStats],
        previous: Mapping[str, ScorerStats],
        *,
        rows_changed: int,
        total_rows: int,
        generation: int,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.query_one("#summary-body", Static).update(
            render_summary(
                current,
                previous,
                rows_changed=rows_changed,
                total_rows=total_rows,
                generation=generation,
                metrics=metrics,
            )
        )
