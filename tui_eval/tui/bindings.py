"""Every key binding of the app in one table: id, keys, vim alias, action and description.

Widgets and screens build their ``BINDINGS`` from this table and the help screen lists it,
so a key is written down once. The ids let a user remap keys through Textual's keymap
(``App.set_keymap({"filter.open": "ctrl+s"})``).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One binding: where it applies (``scope``), its keys, the action it runs and its help text.

    ``key`` is the primary key and ``vim`` the key a vim user reaches for. The two are the
    same when the primary key already is the vim key (``q``, ``?``, ``/``).
    """

    id: str
    scope: str
    key: str
    vim: str
    action: str
    description: str
    show: bool = False
    footer: str = ""

    @property
    def keys(self) -> str:
        return self.key if self.vim == self.key else f"{self.key},{self.vim}"


SCOPES = {
    "list": "Trace list",
    "tree": "Span tree",
    "app": "Everywhere",
    "help": "Help screen",
}

KEYS: tuple[KeySpec, ...] = (
    # Moving in the trace list.
    KeySpec("cursor.down", "list", "down", "j", "cursor_down", "Move down"),
    KeySpec("cursor.up", "list", "up", "k", "cursor_up", "Move up"),
    KeySpec("cursor.top", "list", "home", "g", "cursor_top", "First trace"),
    KeySpec("cursor.bottom", "list", "end", "G", "cursor_bottom", "Last trace"),
    KeySpec("cursor.page_down", "list", "pagedown", "ctrl+d", "page_down", "Page down"),
    KeySpec("cursor.page_up", "list", "pageup", "ctrl+u", "page_up", "Page up"),
    KeySpec("trace.open", "list", "enter", "l", "open", "Open the trace", show=True, footer="Open"),
    # Moving in the span tree of the detail pane.
    KeySpec("span.down", "tree", "down", "j", "cursor_down", "Next span"),
    KeySpec("span.up", "tree", "up", "k", "cursor_up", "Previous span"),
    KeySpec("span.top", "tree", "home", "g", "cursor_top", "Root span"),
    KeySpec("span.bottom", "tree", "end", "G", "cursor_bottom", "Last span"),
    KeySpec("span.page_down", "tree", "pagedown", "ctrl+d", "page_down", "Page down"),
    KeySpec("span.page_up", "tree", "pageup", "ctrl+u", "page_up", "Page up"),
    # Everywhere on the main screen.
    KeySpec("app.back", "app", "escape", "h", "back", "Back (close, clear filter)"),
    KeySpec("pane.next", "app", "tab", "ctrl+w", "next_pane", "Next pane"),
    KeySpec("pane.previous", "app", "shift+tab", "W", "previous_pane", "Previous pane"),
    KeySpec("pane.traces", "app", "1", "1", "show_pane('traces')", "Trace list pane"),
    KeySpec("pane.detail", "app", "2", "2", "show_pane('detail')", "Detail pane"),
    KeySpec("pane.scores", "app", "3", "3", "show_pane('scores')", "Scores pane"),
    KeySpec("pane.summary", "app", "4", "4", "show_pane('summary')", "Summary pane"),
    KeySpec("pane.log", "app", "5", "5", "show_pane('log')", "Log and errors pane"),
    KeySpec("filter.open", "app", "ctrl+f", "slash", "filter", "Filter", show=True, footer="Filter"),
    KeySpec("filter.next", "app", "f3", "n", "next_match", "Next trace in the filter"),
    KeySpec("filter.previous", "app", "shift+f3", "N", "previous_match", "Previous trace in the filter"),
    KeySpec("view.changed", "app", "c", "c", "toggle_changed", "Only changed in last generation", show=True, footer="Changed"),
    KeySpec("view.failures", "app", "f", "f", "toggle_failures", "Only failures", show=True, footer="Failures"),
    KeySpec("view.sort", "app", "s", "s", "sort_next", "Sort by the next column"),
    KeySpec("view.sort_reverse", "app", "S", "S", "sort_reverse", "Reverse the sort order"),
    KeySpec("scores.rescore", "app", "r", "r", "rescore", "Rescore every trace", show=True, footer="Rescore"),
    KeySpec("scorer.edit", "app", "e", "e", "edit_scorer", "Edit the scorer module in $EDITOR", show=True, footer="Edit"),
    KeySpec("span.show_all", "app", "a", "a", "show_all", "Show or cut whole payloads of the span"),
    KeySpec("view.export", "app", "x", "w", "export", "Export the view (CSV, JSONL)"),
    KeySpec("app.help", "app", "f1", "question_mark", "help", "Help", show=True, footer="Help"),
    KeySpec("app.command_palette", "app", "ctrl+p", "colon", "command_palette", "Command palette"),
    KeySpec("app.quit", "app", "ctrl+q", "q", "quit", "Quit", show=True, footer="Quit"),
    # The help screen.
    KeySpec("help.close", "help", "escape", "q", "dismiss", "Close the help"),
    KeySpec("help.down", "help", "down", "j", "scroll_down", "Scroll down"),
    KeySpec("help.up", "help", "up", "k", "scroll_up", "Scroll up"),
)

_BY_ID = {spec.id: spec for spec in KEYS}


def spec(binding_id: str) -> KeySpec:
    return _BY_ID[binding_id]


def bindings_for(scope: str) -> list[Binding]:
    """Build the Textual bindings of one scope, with the primary key and vim alias under one id."""
    return [
        Binding(
            item.keys,
            item.action,
            item.footer or item.description,
            show=item.show,
            tooltip=item.description,
            key_display=display_key(item.key) if item.show else None,
            id=item.id,
        )
        for item in KEYS
        if item.scope == scope
    ]


_KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "colon": ":",
    "escape": "esc",
    "pagedown": "pgdn",
    "pageup": "pgup",
    "shift+tab": "shift+tab",
}


def display_key(key: str) -> str:
    """How a key is written in the help and the footer: ``?`` for question_mark, ``^p`` for ctrl+p."""
    if key in _KEY_NAMES:
        return _KEY_NAMES[key]
    if key.startswith("ctrl+"):
        return "^" + key[len("ctrl+"):]
    return key
