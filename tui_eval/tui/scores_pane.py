"""The scores of the trace under the cursor: value, rationale, error, source, previous value."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui_eval.tui.model import Row
from tui_eval.tui.render import DIM, render_score, visible


class ScoresPane(VerticalScroll, can_focus=True):
    """Every feedback of one trace, in column order, with its value in the previous generation."""

    DEFAULT_CSS = """
    ScoresPane { padding: 0 1; }
    """

    def compose(self):
        yield Static(Text("No trace selected.", style="dim italic"), id="scores-body")

    def show_row(self, row: Row | None, columns: list[str], *, stale: bool = False) -> None:
        body = self.query_one("#scores-body", Static)
        if row is None:
            body.update(Text("No trace selected.", style="dim italic"))
            return
        parts = [Text(visible(row.trace_id), style=DIM)]
        if stale:
            parts.append(Text("Stale: the last reload failed; these are the last good scores.", style="italic"))
        names = [name for name in columns if name in row.scores or (row.previous and name in row.previous)]
        names += [name for name in row.scores if name not in names]
        if not names:
            parts.append(Text("Not scored yet.", style="dim italic"))
        has_previous = row.previous is not None
        for name in names:
            parts.append(
                render_score(
                    row.scores.get(name),
                    name=name,
                    previous=row.previous.get(name) if row.previous else None,
                    has_previous=has_previous,
                    changed=name in row.changed,
                )
            )
        content = Group(*parts)
        width = body.content_region.width
        if width > 0 and body.size.height > 0:
            # A layout of the whole screen takes 10 ms or more. Neighbouring rows' scores
            # usually take as many lines, and then the pane redraws without one.
            options = self.app.console.options.update_width(width)
            height = len(self.app.console.render_lines(content, options, pad=False))
            body.update(content, layout=height != body.content_region.height)
            return
        body.update(content)
