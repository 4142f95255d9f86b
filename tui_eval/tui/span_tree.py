"""The span tree of the open trace: one line per span with its type, duration and a bar.

The bar places each span against the whole trace, so the slow step is easy to see. Lines are
drawn through the line API like the trace list, so a trace of thousands of spans scrolls
as fast as a short one.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui_eval.entities import Span, Trace
from tui_eval.tui.bindings import bindings_for
from tui_eval.tui.render import SpanRow, fit, span_label, span_rows


class SpanTree(ScrollView, can_focus=True):
    """The spans of one trace in tree order with a cursor."""

    BINDINGS = bindings_for("tree")

    COMPONENT_CLASSES = {"span-tree--cursor", "span-tree--cursor-blurred", "span-tree--empty"}

    DEFAULT_CSS = """
    SpanTree { overflow-x: hidden; }
    SpanTree > .span-tree--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    SpanTree > .span-tree--cursor-blurred { background: $block-cursor-blurred-background; }
    SpanTree > .span-tree--empty { color: $text-muted; text-style: italic; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class SpanHighlighted(Message):
        """The cursor moved onto a span."""

        def __init__(self, span_tree: SpanTree, span: Span) -> None:
            super().__init__()
            self.span_tree = span_tree
            self.span = span

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.trace: Trace | None = None
        self.rows: list[SpanRow] = []
        self.trace_start_ns = 0
        self.trace_end_ns = 1
        self.empty_message = "Open a trace with Enter."

    def show_trace(self, trace: Trace | None) -> None:
        """Show a trace's spans (None shows the empty message) and put the cursor on the root."""
        self.trace = trace
        self.rows = span_rows(trace.data.spans) if trace is not None else []
        spans = [row.span for row in self.rows]
        if spans:
            self.trace_start_ns = min(span.start_time_ns for span in spans)
            ends = [span.end_time_ns for span in spans if span.end_time_ns is not None]
            self.trace_end_ns = max(ends, default=self.trace_start_ns + 1)
        self.virtual_size = Size(self.size.width, max(len(self.rows), 1))
        self.scroll_to(y=0, animate=False, force=True)
        self.cursor = 0
        self.refresh()

    @property
    def current_span(self) -> Span | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].span
        return None

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1))

    def watch_cursor(self) -> None:
        top = int(self.scroll_y)
        height = max(self.scrollable_content_region.height, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, force=True)
        self.refresh()
        span = self.current_span
        if span is not None:
            self.post_message(self.SpanHighlighted(self, span))

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_top(self) -> None:
        self.cursor = 0

    def action_cursor_bottom(self) -> None:
        self.cursor = len(self.rows) - 1

    def action_page_down(self) -> None:
        self.cursor += max(self.scrollable_content_region.height - 1, 1)

    def action_page_up(self) -> None:
        self.cursor -= max(self.scrollable_content_region.height - 1, 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None:
            self.cursor = int(self.scroll_y) + offset.y

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, max(len(self.rows), 1))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        index = int(self.scroll_y) + y
        if not self.rows:
            if y == 0:
                style = self.get_component_rich_style("span-tree--empty")
                return self._strip(fit(Text(" " + self.empty_message), width), width, base + style)
            return Strip.blank(width, base)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        bar_width = min(24, max(width // 4, 6)) if width >= 30 else 0
        text = span_label(self.rows[index], width, self.trace_start_ns, self.trace_end_ns, bar_width)
        style = base
        if index == self.cursor:
            component = "span-tree--cursor" if self.has_focus else "span-tree--cursor-blurred"
            style = base + self.get_component_rich_style(component)
        return self._strip(text, width, style)

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = [Segment(s.text, style + s.style if s.style else style) for s in text.render(self.app.console)]
        return Strip(segments).adjust_cell_length(width, style).simplify()
