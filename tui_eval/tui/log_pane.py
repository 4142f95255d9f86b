"""The log pane: what the user's code printed, reload events and the app's own log records."""

from __future__ import annotations

import logging
import time

from textual.message import Message
from textual.widgets import Log

from tui_eval.tui.render import visible


class LogPane(Log):
    """A plain-text log; every line is made visible first, so no escape sequence is sent."""

    DEFAULT_CSS = """
    LogPane { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None, clock: bool = True):
        super().__init__(max_lines=5000, auto_scroll=True, id=id, classes=classes)
        self.clock = clock
        # Whether new lines scroll into view: true until the user scrolls up, and again once
        # they scroll back to the end. Log's own auto_scroll stops for good when the pane
        # shrinks (the error pane opening above it), because it is then no longer at the end.
        self.following = True

    def add_line(self, source: str, line: str) -> None:
        """Append one line; ``source`` names where it came from (stdout, stderr, reload, log)."""
        stamp = time.strftime("%H:%M:%S ") if self.clock else ""
        lines = [f"{stamp}{source:<6} {part}" for part in visible(line.rstrip("\n"), multiline=True).split("\n")]
        self.write_lines(lines, scroll_end=False)
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.following = self.is_vertical_scroll_end

    def on_resize(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)


class LogPaneHandler(logging.Handler):
    """Routes log records of the ``tui_eval`` loggers into the log pane (from any thread)."""

    def __init__(self, app, pane_id: str = "log"):
        super().__init__(logging.INFO)
        self.app = app
        self.pane_id = pane_id
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.app.post_message(LogRecordReceived(record.levelname.lower(), message))
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            self.handleError(record)


class LogRecordReceived(Message):
    """A log record arrived from some thread and waits to be written to the log pane."""

    def __init__(self, level: str, message: str) -> None:
        super().__init__()
        self.level = level
        self.message = message
