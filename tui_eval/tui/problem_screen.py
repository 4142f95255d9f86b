"""The screen shown instead of the workbench when the store is missing, empty, damaged or too new."""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Static

from tui_eval.tui.render import DIM, visible


class StoreProblem:
    """A problem with the store, with the advice shown to the user."""

    MISSING = "missing"
    EMPTY = "empty"
    UNREADABLE = "unreadable"
    NEWER = "newer"
    BAD_FILTER = "filter"

    def __init__(self, kind: str, path: str, detail: str = ""):
        self.kind = kind
        self.path = path
        self.detail = detail

    @property
    def title(self) -> str:
        return {
            self.MISSING: "No trace store here yet",
            self.EMPTY: "The store has no traces yet",
            self.UNREADABLE: "This file cannot be read as a trace store",
            self.NEWER: "This store was written by a newer tui-eval",
            self.BAD_FILTER: "The --filter expression is invalid",
        }[self.kind]

    @property
    def advice(self) -> list[str]:
        if self.kind in (self.MISSING, self.EMPTY):
            return [
                "Record traces with  tui-eval generate APP_REF --data FILE  or the tracing API",
                "(tui_eval.trace, tui_eval.start_span), or import them with  tui-eval traces import FILE.",
                "Try the whole loop on sample data with  tui-eval demo.",
                "Open another store with  tui-eval open --store PATH  (or set TUI_EVAL_STORE).",
            ]
        if self.kind == self.BAD_FILTER:
            return [
                "--filter takes a search_traces filter string, for example",
                "  attributes.status = 'OK'   or   tags.topic = 'refunds'.",
                "Filter interactively inside the app with / instead.",
            ]
        if self.kind == self.NEWER:
            return ["Upgrade tui-eval (pip install -U tui-eval), then open the store again."]
        return [
            "Check the path: it must be a store written by tui-eval (a SQLite file).",
            "Open another store with  tui-eval open --store PATH.",
        ]


def render_problem(problem: StoreProblem) -> Group:
    parts = [
        Text(problem.title, style=Style(bold=True)),
        Text(""),
        Text.assemble(("store  ", DIM), visible(problem.path)),
    ]
    if problem.detail:
        parts.append(Text(visible(problem.detail, multiline=True), style=Style(color="red")))
    parts.append(Text(""))
    parts.extend(Text(line) for line in problem.advice)
    parts.append(Text(""))
    parts.append(Text("r  check again     q  quit", style=DIM))
    return Group(*parts)


class ProblemScreen(Screen[None]):
    """A full screen explanation with a retry key; never a traceback."""

    BINDINGS = [
        Binding("r", "retry", "Check again", id="problem.retry"),
        Binding("q,ctrl+q,escape", "app.quit", "Quit", id="problem.quit"),
    ]

    DEFAULT_CSS = """
    ProblemScreen { align: center middle; }
    ProblemScreen #problem-body { width: auto; max-width: 90; border: round $warning; padding: 1 2; height: auto; }
    """

    def __init__(self, problem: StoreProblem):
        super().__init__()
        self.problem = problem

    def compose(self):
        yield Static(render_problem(self.problem), id="problem-body")

    def action_retry(self) -> None:
        self.app.retry_open()  # type: ignore[attr-defined]
