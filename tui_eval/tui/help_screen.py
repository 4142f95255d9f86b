"""The help screen, generated from the binding table so that it never disagrees with the keys."""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui_eval.tui.bindings import KEYS, SCOPES, bindings_for, display_key
from tui_eval.tui.query import __doc__ as FILTER_HELP
from tui_eval.tui.render import DIM, fit


def render_help(width: int = 76) -> Group:
    """List every binding by scope: key, vim alias, description and binding id."""
    parts: list[Text] = [
        Text("tui-eval keys", style=Style(bold=True)),
        Text("Remap any key by its id with Textual's keymap. Esc or q closes this screen.", style=DIM),
    ]
    key_width, vim_width, id_width = 10, 8, 20
    text_width = max(width - key_width - vim_width - id_width - 3, 16)
    for scope, title in SCOPES.items():
        parts.append(Text(""))
        parts.append(Text(title, style=Style(bold=True, underline=True)))
        parts.append(
            Text.assemble(
                fit(Text("key", style=DIM), key_width), " ",
                fit(Text("vim", style=DIM), vim_width), " ",
                fit(Text("action", style=DIM), text_width), " ",
                fit(Text("id", style=DIM), id_width),
            )
        )
        for item in KEYS:
            if item.scope != scope:
                continue
            vim = display_key(item.vim) if item.vim != item.key else "\u2033"
            parts.append(
                Text.assemble(
                    fit(Text(display_key(item.key), style=Style(bold=True)), key_width), " ",
                    fit(Text(vim, style=Style(bold=True)), vim_width), " ",
                    fit(Text(item.description), text_width), " ",
                    fit(Text(item.id, style=DIM), id_width),
                )
            )
    parts.append(Text(""))
    parts.append(Text("Filter expressions (/)", style=Style(bold=True, underline=True)))
    body = (FILTER_HELP or "").split("\n\n", 1)[-1]
    # The docstring marks literals the reStructuredText way; on screen they read as they are typed.
    parts.append(Text(body.strip().replace("``", "")))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """A modal listing every key; scrolls with the arrows or j/k."""

    BINDINGS = bindings_for("help")

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    def compose(self):
        with VerticalScroll(id="help-scroll"):
            yield Static(render_help(), id="help-body")

    def on_resize(self) -> None:
        scroll = self.query_one("#help-scroll")
        self.query_one("#help-body", Static).update(render_help(max(scroll.scrollable_content_region.width, 40)))

    def action_dismiss(self) -> None:
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        self.query_one("#help-scroll").scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help-scroll").scroll_up(animate=False)
