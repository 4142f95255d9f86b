"""The selected span's inputs, outputs, attributes and events, scrolled as one document."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui_eval.entities import Span
from tui_eval.tui.bindings import spec
from tui_eval.tui.render import display_key_hint, render_span_detail


class SpanView(VerticalScroll, can_focus=True):
    """A scrolling view of one span; payloads over the size limit are cut until ``show_all``."""

    DEFAULT_CSS = """
    SpanView { padding: 0 1; }
    SpanView > Static { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.span: Span | None = None
        self.trace_start_ns = 0
        self.show_all = False
        self.cut_chars = 0

    def compose(self):
        yield Static(Text("Select a span to see its inputs and outputs.", style="dim italic"), id="span-body")

    def show_span(self, span: Span | None, trace_start_ns: int = 0, *, show_all: bool = False) -> None:
        """Render ``span`` (None clears the view); ``show_all`` draws payloads uncut."""
        self.span = span
        self.trace_start_ns = trace_start_ns
        self.show_all = show_all
        body = self.query_one("#span-body", Static)
        if span is None:
            self.cut_chars = 0
            body.update(Text("Select a span to see its inputs and outputs.", style="dim italic"))
            return
        payload = render_span_detail(
            span,
            trace_start_ns=trace_start_ns,
            show_all=show_all,
            key=display_key_hint(spec("span.show_all").key),
        )
        self.cut_chars = payload.cut_chars
        body.update(payload.renderable)
        self.scroll_home(animate=False)
