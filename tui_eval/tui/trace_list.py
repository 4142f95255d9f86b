"""The trace list: a virtualised table that renders only the rows on screen.

It draws from a ``TraceListModel`` (rows, view, score columns) through Textual's line API:
``render_line`` requests one screen line, so a list of 100,000 traces costs the same to
draw as a list of 30. Rendered rows are kept in a small LRU cache keyed by everything that
changes their look; ``refresh_rows`` drops the entries of rows whose scores changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui_eval.tui.bindings import bindings_for
from tui_eval.tui.model import SCORE_PREFIX, Row, TraceListModel
from tui_eval.tui.render import fit, format_count, format_duration_ms, format_time_ms, score_cell

GAP = 1


@dataclass(frozen=True, slots=True)
class Column:
    """One column on screen: its sort id, its title and its width in cells."""

    id: str
    title: str
    width: int
    justify: str = "left"


# The id of the last column when some scorer columns do not fit (see layout_columns).
HIDDEN_COLUMN = "hidden"


def layout_columns(width: int, scorer_names: list[str]) -> list[Column]:
    """Choose the columns and their widths for a list ``width`` cells wide.

    Fixed columns come first, one column per scorer (as wide as its name, between 5 and 12
    cells), and the request preview takes what is left. Narrow lists drop the name and
    token columns, then shorten the time, before the preview goes under 12 cells. Scorer
    columns that still do not fit are left out from the last one back, and a last column
    titled ``+N`` (id ``HIDDEN_COLUMN``) says how many; the Scores pane shows every score.
    """
    scorer_columns = [
        Column(SCORE_PREFIX + name, name, max(5, min(len(name), 12))) for name in scorer_names
    ]
    wide = width >= 110
    fixed = [Column("time", "time", 14 if width >= 90 else 11)]
    if wide:
        fixed.append(Column("name", "name", 14))
    trailing = [Column("duration", "duration", 8, "right"), Column("state", "st", 3)]
    if width >= 90:
        trailing.append(Column("tokens", "tokens", 6, "right"))
    used = sum(column.width + GAP for column in [*fixed, *trailing, *scorer_columns])
    preview_width = width - used
    # Give scorer columns less room before the preview shrinks below a readable width.
    while preview_width < 12 and any(column.width > 5 for column in scorer_columns):
        scorer_columns = [Column(c.id, c.title, max(5, c.width - 1)) for c in scorer_columns]
        used = sum(column.width + GAP for column in [*fixed, *trailing, *scorer_columns])
        preview_width = width - used
    hidden: list[Column] = []
    while preview_width < 12 and scorer_columns:
        dropped = scorer_columns.pop()
        preview_width += dropped.width + GAP
        if not hidden:
            # Room for the "+N" marker itself.
            preview_width -= 3 + GAP
        hidden = [Column(HIDDEN_COLUMN, f"+{len(scorer_names) - len(scorer_columns)}", 3, "right")]
    return [*fixed, Column("request", "request", max(preview_width, 4)), *trailing, *scorer_columns, *hidden]


class TraceList(ScrollView, can_focus=True):
    """A scrolling table of traces with a cursor, one column per scorer.

    | Key | Action |
    | --- | --- |
    | up / k, down / j | Move the cursor |
    | home / g, end / G | First / last trace |
    | pageup / ctrl+u, pagedown / ctrl+d | Move a page |
    | enter / l | Open the trace under the cursor |
    """

    BINDINGS = bindings_for("list")

    COMPONENT_CLASSES = {
        "trace-list--header",
        "trace-list--cursor",
        "trace-list--cursor-blurred",
        "trace-list--error",
        "trace-list--dim",
        "trace-list--empty",
    }

    DEFAULT_CSS = """
    TraceList {
        overflow-x: hidden;
    }
    TraceList > .trace-list--header { text-style: bold; background: $panel; }
    TraceList > .trace-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
    TraceList > .trace-list--cursor-blurred { background: $block-cursor-blurred-background; }
    TraceList > .trace-list--error { color: $error; }
    TraceList > .trace-list--dim { color: $text-muted; }
    TraceList > .trace-list--empty { color: $text-muted; text-style: italic; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class TraceHighlighted(Message):
        """The cursor moved onto a trace, or off the last one when the view became empty."""

        def __init__(self, trace_list: TraceList, row: Row | None) -> None:
            super().__init__()
            self.trace_list = trace_list
            # None when the view became empty.
            self.row = row

    class TraceSelected(Message):
        """The user opened a trace (Enter or a click on the cursor row)."""

        def __init__(self, trace_list: TraceList, row: Row) -> None:
            super().__init__()
            self.trace_list = trace_list
            self.row = row

    class SortRequested(Message):
        """The user clicked a column title."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, model: TraceListModel, *, name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.stale = False
        self.empty_message = "No traces."
        self._columns: list[Column] = []
        self._columns_key: tuple[int, tuple[str, ...]] | None = None
        self._row_cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self._header_cache: tuple[tuple, Strip] | None = None
        self._highlighted_id: str | None = None

    # --- data --------------------------------------------------------------------------------

    @property
    def columns(self) -> list[Column]:
        # The vertical scrollbar covers the right edge of the widget, so columns fit left of it.
        width = self.scrollable_content_region.width
        key = (width, tuple(self.model.columns))
        if key != self._columns_key:
            self._columns = layout_columns(width, list(self.model.columns))
            self._columns_key = key
            self._row_cache.clear()
        return self._columns

    @property
    def current_row(self) -> Row | None:
        view = self.model.view
        if 0 <= self.cursor < len(view):
            return view[self.cursor]
        return None

    def view_changed(self, keep_trace_id: str | None = None) -> None:
        """Call after the model's view was rebuilt: resize, keep the cursor on the same trace."""
        view = self.model.view
        trace_id = keep_trace_id if keep_trace_id is not None else self._highlighted_id
        index = None
        if trace_id is not None:
            index = next((i for i, row in enumerate(view) if row.trace_id == trace_id), None)
        self._row_cache.clear()
        self._header_cache = None
        self.virtual_size = Size(self.size.width, len(view) + 1)
        self.cursor = index if index is not None else min(self.cursor, max(len(view) - 1, 0))
        # The cursor may keep its number while the row under it changes or the view empties.
        # watch_cursor does not see that, so the panes that follow the cursor are notified here.
        row = self.current_row
        trace_id = row.trace_id if row is not None else None
        if trace_id != self._highlighted_id:
            self._highlighted_id = trace_id
            self.post_message(self.TraceHighlighted(self, row))
        self.refresh()

    def rows_appended(self) -> None:
        """Call after rows were added at the end of the view (loading pages): no cache to drop."""
        self.virtual_size = Size(self.size.width, len(self.model.view) + 1)
        if self._highlighted_id is None and self.model.view:
            self.cursor = self.cursor
        self.refresh()

    def refresh_rows(self, trace_ids: set[str] | None = None) -> None:
        """Redraw after scores changed: the rows on screen among ``trace_ids``, or all when None."""
        self._header_cache = None
        if trace_ids is None:
            self._row_cache.clear()
            self.refresh()
            return
        self.refresh_line(int(self.scroll_y))
        top = int(self.scroll_y)
        for index, row in enumerate(self.model.view[top: top + self.size.height], start=top):
            if row.trace_id in trace_ids:
                self.refresh_line(index + 1)

    # --- cursor ------------------------------------------------------------------------------

    @property
    def page_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.model.view) - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_to_cursor()
        row = self.current_row
        self.refresh()
        if row is not None and row.trace_id != self._highlighted_id:
            self._highlighted_id = row.trace_id
            self.post_message(self.TraceHighlighted(self, row))

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_y)
        height = self.page_height
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, force=True)

    def move_to_trace(self, trace_id: str) -> bool:
        index = self.model.index_of(trace_id)
        if index is None:
            return False
        self.cursor = index
        return True

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_top(self) -> None:
        self.cursor = 0

    def action_cursor_bottom(self) -> None:
        self.cursor = len(self.model.view) - 1

    def action_page_down(self) -> None:
        self.scroll_to(y=self.scroll_y + self.page_height, animate=False, force=True)
        self.cursor += self.page_height

    def action_page_up(self) -> None:
        self.scroll_to(y=max(self.scroll_y - self.page_height, 0), animate=False, force=True)
        self.cursor -= self.page_height

    def action_open(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.TraceSelected(self, row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            if column is not None and column.id != HIDDEN_COLUMN:
                self.post_message(self.SortRequested(column.id))
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self.model.view):
            if index == self.cursor and event.chain >= 2:
                self.action_open()
            self.cursor = index

    def _column_at(self, x: int) -> Column | None:
        position = 0
        for column in self.columns:
            if position <= x < position + column.width + GAP:
                return column
            position += column.width + GAP
        return None

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.model.view) + 1)
        self._header_cache = None
        self._row_cache.clear()
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- rendering ---------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._render_header(width, base)
        index = int(self.scroll_y) + y - 1
        view = self.model.view
        if index >= len(view):
            if index == 0 and not view:
                style = self.get_component_rich_style("trace-list--empty")
                return self._to_strip(fit(Text(" " + self.empty_message), width), width, base + style)
            return Strip.blank(width, base)
        row = view[index]
        is_cursor = index == self.cursor
        key = (row.trace_id, row.version, width, is_cursor, is_cursor and self.has_focus, self.stale)
        strip = self._row_cache.get(key)
        if strip is None:
            strip = self._render_row(row, width, base, is_cursor)
            self._row_cache[key] = strip
        return strip

    def _render_header(self, width: int, base: Style) -> Strip:
        model = self.model
        key = (width, model.sort_column, model.sort_reverse, tuple(model.columns), self.stale)
        if self._header_cache is not None and self._header_cache[0] == key:
            return self._header_cache[1]
        style = self.get_component_rich_style("trace-list--header")
        text = Text(end="")
        for column in self.columns:
            title = column.title
            if column.id == model.sort_column:
                # Keep the arrow visible when the title fills its column.
                title = title[: max(column.width - 1, 1)] + ("\u25bc" if model.sort_reverse else "\u25b2")
            if self.stale and column.id.startswith(SCORE_PREFIX):
                title = "~" + title
            text.append_text(fit(Text(title), column.width, justify=column.justify))
            text.append(" " * GAP)
        strip = self._to_strip(text, width, base + style)
        self._header_cache = (key, strip)
        return strip

    def _render_row(self, row: Row, width: int, base: Style, is_cursor: bool) -> Strip:
        dim = self.get_component_rich_style("trace-list--dim", partial=True)
        text = Text(end="")
        for column in self.columns:
            column_id = column.id
            if column_id == "time":
                cell = Text(format_time_ms(row.request_time, with_seconds=column.width >= 14), style=dim)
            elif column_id == "name":
                cell = Text(row.name)
            elif column_id == "request":
                cell = Text(row.request)
            elif column_id == "duration":
                cell = Text(format_duration_ms(row.duration_ms))
            elif column_id == "state":
                cell = _state_text(row.state, self.get_component_rich_style("trace-list--error", partial=True))
            elif column_id == "tokens":
                cell = Text(format_count(row.tokens), style=dim)
            elif column_id == HIDDEN_COLUMN:
                cell = Text("")
            else:
                name = column_id[len(SCORE_PREFIX):]
                text.append_text(
                    score_cell(row.scores.get(name), column.width, changed=name in row.changed, stale=self.stale)
                )
                text.append(" " * GAP)
                continue
            text.append_text(fit(cell, column.width, justify=column.justify))
            text.append(" " * GAP)
        style = base
        if is_cursor:
            component = "trace-list--cursor" if self.has_focus else "trace-list--cursor-blurred"
            style = base + self.get_component_rich_style(component)
        return self._to_strip(text, width, style)

    def _to_strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = [Segment(segment.text, style + segment.style if segment.style else style) for segment in text.render(self.app.console)]
        return Strip(segments).adjust_cell_length(width, style).simplify()


def _state_text(state: str, error_style: Style) -> Text:
    if state == "OK":
        return Text("ok")
    if state == "ERROR":
        return Text("ERR", style=error_style)
    if state == "IN_PROGRESS":
        return Text("\u2026")
    return Text("?")
