"""Import and syntax errors of the scorer module, with file and line, until the next good reload."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui_eval.tui.render import render_error_report


class ErrorPane(VerticalScroll, can_focus=True):
    """The last failed reload, or a line saying there is none."""

    DEFAULT_CSS = """
    ErrorPane { padding: 0 1; }
    """

    def compose(self):
        yield Static(Text("No reload errors.", style="dim italic"), id="error-body")

    def show_error(self, path: Path | str | None, line: int | None, message: str, traceback: str | None) -> None:
        body = render_error_report(str(path) if path is not None else None, line, message, traceback)
        self.query_one("#error-body", Static).update(body)

    def clear_error(self) -> None:
        self.query_one("#error-body", Static).update(Text("No reload errors.", style="dim italic"))
