"""A small dialog for the path to export the current view to; the file extension picks the format."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ExportScreen(ModalScreen[str | None]):
    """Returns the chosen path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 70; max-width: 95%; height: auto; border: round $primary; background: $surface; padding: 0 1; }
    ExportScreen Input { margin: 1 0 0 0; }
    """

    def __init__(self, default_path: str, rows: int):
        super().__init__()
        self.default_path = default_path
        self.rows = rows

    def compose(self):
        with Vertical():
            yield Static(Text(f"Export the {self.rows:,} rows of the view", style="bold"))
            yield Static(Text("A path ending in .csv writes CSV; .jsonl writes JSON Lines. Esc cancels.", style="dim"))
            yield Input(self.default_path, id="export-path", select_on_focus=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
