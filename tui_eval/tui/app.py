"""The tui-eval Textual app: opens the store, then shows the workbench or explains what is wrong."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App
from textual.command import Hit, Hits, Provider
from textual.content import Content

from tui_eval.errors import FilterError, StoreError, StoreFormatError
from tui_eval.tui.bindings import KEYS, display_key
from tui_eval.tui.log_pane import LogPaneHandler, LogRecordReceived
from tui_eval.tui.main_screen import MainScreen
from tui_eval.tui.model import SCORE_PREFIX
from tui_eval.tui.problem_screen import ProblemScreen, StoreProblem

logger = logging.getLogger(__name__)

# The input events after which background work gives way for a moment (not mouse moves).
_USER_INPUT = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)


def highlight_match(matcher: Any, candidate: str) -> Content:
    """Highlight fuzzy-matched letters without reading ``candidate`` as markup.

    Textual's ``Matcher.highlight`` parses its candidate as markup, and candidates here
    include scorer names, which are user text.
    """
    content = Content(candidate)
    score, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    if score:
        for offset in offsets:
            if not candidate[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class WorkbenchCommands(Provider):
    """Command palette entries: every key of the workbench, and a sort command per column."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        # The palette is a screen of its own; ``self.screen`` is the one it was opened over.
        screen = self.screen
        if not isinstance(screen, MainScreen):
            return []
        commands: list[tuple[str, Callable[[], Any], str]] = []
        for item in KEYS:
            if item.scope != "app" or item.id == "app.command_palette":
                continue
            action = item.action
            commands.append(
                (item.description, lambda action=action: screen.run_action(action), f"key {display_key(item.key)} \u00b7 {item.id}")
            )
        for column in screen.model.sort_columns():
            title = column[len(SCORE_PREFIX):] if column.startswith(SCORE_PREFIX) else column
            commands.append((f"Sort by {title}", lambda column=column: screen._sort(column), "Sort the trace list by this column"))
        return commands

    async def discover(self) -> Hits:
        from textual.command import DiscoveryHit

        for text, callback, help_text in self._commands():
            yield DiscoveryHit(Content(text), callback, text=text, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, highlight_match(matcher, text), callback, text=text, help=help_text)


class TuiEvalApp(App[None]):
    """Browse stored traces and watch scores recompute as the scorer module is saved."""

    CSS_PATH = "app.tcss"
    TITLE = "tui-eval"
    COMMANDS = App.COMMANDS | {WorkbenchCommands}
    # The screens bind the keys; the app keeps Textual's defaults (ctrl+q, ctrl+p) for the rest.
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        store_path: Path | str,
        *,
        run_id: str | None = None,
        filter_string: str | None = None,
        scorers_path: Path | str | None = None,
        session_factory: Callable[..., Any] | None = None,
        route_logging: bool = True,
        log_clock: bool = True,
    ):
        super().__init__()
        self.store_path = Path(store_path)
        self.run_id = run_id
        self.filter_string = filter_string
        self.scorers_path = Path(scorers_path) if scorers_path is not None else None
        self.session_factory = session_factory
        # False drops the time from log lines, which keeps screenshots the same on every run.
        self.log_clock = log_clock
        self.store: Any = None
        self.problem: StoreProblem | None = None
        self._log_handler: LogPaneHandler | None = LogPaneHandler(self) if route_logging else None
        # perf_counter() of the latest key press, click or scroll.
        self.last_input_at = 0.0

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, _USER_INPUT) and not event.is_forwarded:
            # The screens pause their background work briefly after this (see MainScreen._input_pause).
            self.last_input_at = time.perf_counter()
        await super().on_event(event)

    def on_mount(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("tui_eval").addHandler(self._log_handler)
        self.retry_open()

    def on_unmount(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("tui_eval").removeHandler(self._log_handler)
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.stop_session()
        if self.store is not None:
            self.store.close()

    def on_log_record_received(self, message: LogRecordReceived) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen) and screen.is_mounted:
                screen.log_line(message.level, message.message)

    def open_store(self) -> tuple[Any, StoreProblem | None]:
        """Open the store without creating it; return it, or the problem that prevents it."""
        from tui_eval.store import Store

        path = self.store_path
        shown = str(path)
        if not path.exists():
            folder = path.absolute().parent
            detail = "" if folder.is_dir() else f"The folder {folder} does not exist either."
            return None, StoreProblem(StoreProblem.MISSING, shown, detail)
        try:
            store = Store(path)
        except StoreFormatError as error:
            kind = StoreProblem.NEWER if "newer" in str(error).lower() else StoreProblem.UNREADABLE
            return None, StoreProblem(kind, shown, str(error))
        except (StoreError, OSError) as error:
            return None, StoreProblem(StoreProblem.UNREADABLE, shown, str(error))
        try:
            if store.count_traces() == 0:
                store.close()
                return None, StoreProblem(StoreProblem.EMPTY, shown)
            if self.filter_string or self.run_id:
                store.count_traces(filter_string=self.filter_string, run_id=self.run_id)
        except FilterError as error:
            store.close()
            return None, StoreProblem(StoreProblem.BAD_FILTER, shown, str(error))
        except StoreError as error:
            store.close()
            return None, StoreProblem(StoreProblem.UNREADABLE, shown, str(error))
        return store, None

    def retry_open(self) -> None:
        store, problem = self.open_store()
        self.problem = problem
        if problem is not None:
            logger.info("cannot show the store %s: %s", problem.path, problem.title)
            screen = ProblemScreen(problem)
        else:
            self.store = store
            screen = MainScreen(
                store,
                run_id=self.run_id,
                filter_string=self.filter_string,
                scorers_path=self.scorers_path,
                session_factory=self.session_factory,
            )
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
