"""The trace detail pane: a header line, the span tree and the selected span's payloads."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Container
from textual.widgets import Static

from tui_eval.entities import Trace
from tui_eval.tui.render import DIM, format_duration_ms, format_time_ms, visible
from tui_eval.tui.span_tree import SpanTree
from tui_eval.tui.span_view import SpanView


def trace_heading(trace: Trace) -> Text:
    """Build the heading line of the open trace: name, id, time, duration and state."""
    info = trace.info
    root = trace.data.root_span
    name = root.name if root is not None else ""
    heading = Text(visible(name or "(no root span)"), style="bold")
    heading.append(f"  {visible(info.trace_id)}", style=DIM)
    heading.append(f"  {format_time_ms(info.request_time)}  {format_duration_ms(info.execution_duration)}  ", style=DIM)
    heading.append(str(info.state.value), style="red bold" if info.state.value == "ERROR" else "green")
    return heading


class DetailPane(Container):
    """Span tree beside (wide) or above (narrow) the span view."""

    DEFAULT_CSS = """
    DetailPane { layout: vertical; }
    DetailPane > #detail-heading { height: 1; }
    DetailPane > #detail-body { layout: horizontal; height: 1fr; }
    DetailPane SpanTree { width: 2fr; height: 1fr; }
    DetailPane SpanView { width: 3fr; height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.trace: Trace | None = None
        self.loading_id: str | None = None

    def compose(self):
        yield Static(Text("No trace open.", style="dim italic"), id="detail-heading")
        with Container(id="detail-body"):
            yield SpanTree(id="span-tree")
            yield SpanView(id="span-view")

    def show_loading(self, trace_id: str) -> None:
        self.loading_id = trace_id
        self.query_one("#detail-heading", Static).update(Text(f"Loading {visible(trace_id)}\u2026", style="dim italic"))

    def show_trace(self, trace: Trace | None, *, missing_id: str | None = None) -> None:
        """Show a loaded trace, or a line reporting that ``missing_id`` is no longer in the store."""
        self.trace = trace
        self.loading_id = None
        heading = self.query_one("#detail-heading", Static)
        tree = self.query_one(SpanTree)
        if trace is None:
            message = f"Trace {visible(missing_id)} is not in the store any more." if missing_id else "No trace open."
            heading.update(Text(message, style="dim italic"))
            tree.show_trace(None)
            self.query_one(SpanView).show_span(None)
            return
        line = trace_heading(trace)
        # Cut at draw time: the pane may be hidden (zero wide) when a trace is opened.
        line.no_wrap = True
        line.overflow = "ellipsis"
        heading.update(line)
        tree.show_trace(trace)
        self.query_one(SpanView).show_span(tree.current_span, tree.trace_start_ns)
