"""The status bar: store, trace count, watched files, generation, progress, reload time."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui_eval.tui.render import DIM, fit, format_count, format_duration_ms, join_names, visible


@dataclass
class Status:
    """Everything the status bar shows; the app updates fields and calls ``StatusBar.show``."""

    store: str = ""
    shown: int = 0
    total: int = 0
    loading: bool = False
    watched: list[str] = field(default_factory=list)
    generation: int = 0
    done: int = 0
    to_do: int = 0
    scoring: bool = False
    last_reload_ms: float | None = None
    # What started the generation timed by last_reload_ms: "change" (a save), "rescore" or "start".
    last_reload_reason: str = "change"
    stale: bool = False
    filter_text: str = ""
    toggles: list[str] = field(default_factory=list)
    sort: str = ""
    scorer: str = ""


def render_status(status: Status, width: int) -> Text:
    """Render the status line, cut to ``width`` cells; the most useful fields come first."""
    parts: list[Text] = []
    count = f"{format_count(status.shown)}/{format_count(status.total)}" if status.shown != status.total else format_count(status.total)
    parts.append(Text(f"{count} traces" + (" (loading)" if status.loading else ""), style=Style(bold=True)))
    if status.scoring and status.to_do:
        fraction = status.done / status.to_do
        filled = int(fraction * 10)
        parts.append(Text(f"gen {status.generation} " + "\u2588" * filled + "\u2591" * (10 - filled) + f" {status.done}/{status.to_do}", style=Style(color="yellow")))
    elif status.generation:
        parts.append(Text(f"gen {status.generation}"))
    if status.last_reload_ms is not None:
        cause = {"rescore": "rescore", "start": "start"}.get(status.last_reload_reason, "save")
        parts.append(Text(f"{cause}\u2192scores {format_duration_ms(status.last_reload_ms)}"))
    if status.stale:
        parts.append(Text("STALE: reload failed", style=Style(color="red", bold=True)))
    if status.filter_text:
        parts.append(Text("/" + visible(status.filter_text), style=Style(color="cyan")))
    for toggle in status.toggles:
        parts.append(Text(toggle, style=Style(color="cyan")))
    if status.watched:
        parts.append(Text("watching " + join_names(status.watched, 2), style=DIM))
    elif status.scorer:
        parts.append(Text("scorers " + visible(status.scorer), style=DIM))
    if status.store:
        parts.append(Text(visible(status.store), style=DIM))
    line = Text(" ", end="")
    for index, part in enumerate(parts):
        if index:
            line.append(" \u2502 ", style=DIM)
        line.append_text(part)
    return fit(line, width)


class StatusBar(Widget):
    """One line at the bottom of the main screen."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.status = Status()

    def show(self) -> None:
        self.refresh()

    def render(self) -> Text:
        return render_status(self.status, max(self.size.width, 1))
