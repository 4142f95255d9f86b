"""The workbench screen: panes, keys, the store loader and the workbench session's events.

Background threads (the page loader, the trace reader, the session's callback) never touch
a widget: they post messages, and only handlers on this screen change the model and the
panes. Score batches are merged in time slices of a few milliseconds and painted on a
short timer, so the screen responds to keys while a generation streams 100,000 results.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.containers import Container, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input

from tui_eval.entities import Trace
from tui_eval.errors import FilterError, TuiEvalError
from tui_eval.tui.bindings import KEYS, bindings_for, display_key
from tui_eval.tui.detail_pane import DetailPane
from tui_eval.tui.error_pane import ErrorPane
from tui_eval.tui.export import write_view
from tui_eval.tui.log_pane import LogPane
from tui_eval.tui.model import SCORE_PREFIX, Row, TraceListModel
from tui_eval.tui.query import compile_query
from tui_eval.tui.render import fit, visible
from tui_eval.tui.scores_pane import ScoresPane
from tui_eval.tui.span_tree import SpanTree
from tui_eval.tui.span_view import SpanView
from tui_eval.tui.status_bar import StatusBar
from tui_eval.tui.summary_pane import SummaryPane
from tui_eval.tui.trace_list import TraceList

logger = logging.getLogger(__name__)

PANES = ("traces", "detail", "scores", "summary", "log")
PANE_TITLES = {"traces": "Traces", "detail": "Detail", "scores": "Scores", "summary": "Summary", "log": "Log"}

# Below this size the panes collapse into tabs, one pane on screen at a time.
WIDE_MIN_WIDTH = 120
WIDE_MIN_HEIGHT = 32

FIRST_PAGE = 500
PAGE_SIZE = 10_000
# Time a batch of results may hold the UI thread before keys get their turn.
SLICE_SECONDS = 0.005
# Background slices (results, statistics) pause this long after a key press, a click or a
# scroll, so that the input's handling and the frame that shows it do not queue behind them.
INPUT_GRACE_SECONDS = 0.04
# A slice that has waited this long runs anyway, so that a key held down does not hold back the results.
MAX_PAUSE_SECONDS = 0.25
# Traces merged between two looks at the clock; small, because other threads share the GIL.
BATCH_TRACES = 100
PAINT_INTERVAL = 0.2
FOLLOW_DELAY = 0.03
DETAIL_DELAY = 0.1
# Lists up to this size filter as the user types; larger ones when Enter is pressed.
LIVE_FILTER_ROWS = 20_000


class RowsLoaded(Message):
    """A page of rows was read from the store (the loader thread builds the rows)."""

    def __init__(self, rows: list[Row], total: int, finished: bool) -> None:
        super().__init__()
        self.rows = rows
        self.total = total
        self.finished = finished


class LoadFailed(Message):
    """The loader thread could not read the store."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class TraceLoaded(Message):
    """The trace asked for by the detail pane was read (``trace`` is None when it is gone)."""

    def __init__(self, trace_id: str, trace: Trace | None, error: BaseException | None = None) -> None:
        super().__init__()
        self.trace_id = trace_id
        self.trace = trace
        self.error = error


class WorkbenchEventsQueued(Message, bubble=False):
    """The session published events; they wait in the screen's queue of workbench events."""


class StatsComputed(Message):
    def __init__(self, current: dict, previous: dict, rows_changed: int, token: int) -> None:
        super().__init__()
        self.current = current
        self.previous = previous
        self.rows_changed = rows_changed
        self.token = token


class EventFeed(Widget):
    """An invisible widget whose own message queue carries the draining of workbench events.

    Textual repaints a screen only when the screen's message queue runs empty. Draining on
    this widget's queue leaves the screen's queue free, so the screen repaints between slices.
    """

    DEFAULT_CSS = """
    EventFeed { display: none; }
    """

    @on(WorkbenchEventsQueued)
    def _events_queued(self) -> None:
        self.screen._drain()  # type: ignore[attr-defined]


class PaneTabs(Widget):
    """The one-line tab strip shown when the panes collapse into tabs."""

    DEFAULT_CSS = """
    PaneTabs { height: 1; background: $panel; }
    """

    class TabClicked(Message):
        def __init__(self, pane: str) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.active = "traces"
        self.has_error = False
        self._spans: list[tuple[int, int, str]] = []

    def show(self, active: str, has_error: bool) -> None:
        self.active = active
        self.has_error = has_error
        self.refresh()

    def render(self) -> Text:
        active = self.active
        has_error = self.has_error
        text = Text(end="")
        self._spans = []
        for number, pane in enumerate(PANES, start=1):
            title = PANE_TITLES[pane]
            if pane == "log" and has_error:
                title = "Log+Error!"
            label = f" {number} {title} "
            start = text.cell_len
            style = Style(reverse=True, bold=True) if pane == active else Style()
            if pane == "log" and has_error and pane != active:
                style = Style(color="red", bold=True)
            text.append(label, style=style)
            self._spans.append((start, text.cell_len, pane))
            text.append("\u2502", style=Style(dim=True))
        return fit(text, max(self.size.width, 1))

    def on_click(self, event: events.Click) -> None:
        for start, end, pane in self._spans:
            if start <= event.x < end:
                self.post_message(self.TabClicked(pane))


class KeyHints(Widget):
    """The most used keys on one line, drawn from the binding table.

    Textual's Footer rebuilds its widgets whenever the focused widget's bindings change, and
    that costs more than the rest of a pane switch. This line is drawn once per resize.
    """

    DEFAULT_CSS = """
    KeyHints { height: 1; background: $panel; color: $text-muted; }
    """

    def render(self) -> Text:
        text = Text(end="")
        for item in KEYS:
            if not item.show:
                continue
            text.append(f" {display_key(item.vim if len(item.vim) == 1 else item.key)}", style=Style(bold=True))
            text.append(f" {item.footer or item.description} ")
        return fit(text, max(self.size.width, 1))


class FilterBar(Input):
    """The `/` filter line; Enter applies, Esc closes."""

    DEFAULT_CSS = """
    FilterBar { dock: bottom; height: 1; border: none; padding: 0 1; display: none; }
    /* Input's own :focus rule adds a tall border, which would leave no row for the text. */
    FilterBar:focus { border: none; }
    FilterBar.-open { display: block; }
    """


class MainScreen(Screen[None]):
    """The workbench: trace list, detail, scores, summary, log and errors, and the status bar."""

    BINDINGS = bindings_for("app")

    AUTO_FOCUS = "#traces"

    def __init__(
        self,
        store: Any,
        *,
        run_id: str | None = None,
        filter_string: str | None = None,
        scorers_path: Path | None = None,
        session_factory: Callable[..., Any] | None = None,
    ):
        super().__init__()
        self.store = store
        self.run_id = run_id
        self.filter_string = filter_string
        self.scorers_path = scorers_path
        self.session_factory = session_factory
        self.session: Any = None
        self.model = TraceListModel()
        self.active_pane = "traces"
        self.tabbed = True
        self.rows_loading = True
        self.stale = False
        self.has_error = False
        self.metrics: dict[str, float] = {}
        # Workbench events wait here between the session's thread and the UI thread.
        self._events: deque[Any] = deque()
        self._events_posted = threading.Event()
        self._draining: tuple[Any, Iterator[str]] | None = None
        self._drain_pending = False
        self._dirty_ids: set[str] = set()
        self._dirty_all = False
        self._paint_timer: Timer | None = None
        self._detail_timer: Timer | None = None
        self._follow_timer: Timer | None = None
        self._stats_token = 0
        self._stats_job: tuple[int, Generator[None, None, Any]] | None = None
        self._stats_pending = False
        # When background slices began to wait for input to pass (None while they run).
        self._paused_since: float | None = None
        self._generation_started_at: float | None = None
        self._generation_reason = "change"
        self._finished_generation: int | None = None
        self.reload_latency_ms: float | None = None
        # The last generation whose final scores were painted (0 before any).
        self.painted_generation = 0
        self.last_reload_error: Any = None
        self.last_paint_at = 0.0
        self._show_all = False
        self._filter_before = ""

    # --- layout ------------------------------------------------------------------------------

    def compose(self):
        yield PaneTabs(id="pane-tabs")
        with Container(id="panes"):
            yield TraceList(self.model, id="traces", classes="pane")
            yield ScoresPane(id="scores", classes="pane")
            yield SummaryPane(id="summary", classes="pane")
            yield DetailPane(id="detail", classes="pane")
            with Vertical(id="log", classes="pane"):
                yield ErrorPane(id="errors")
                yield LogPane(id="log-lines", clock=getattr(self.app, "log_clock", True))
        yield FilterBar(placeholder="filter: text, changed, error, fail, name=false, score<0.5 (Enter applies, Esc closes)", id="filter")
        yield StatusBar(id="status")
        yield KeyHints(id="hints")
        yield EventFeed(id="event-feed")

    def on_mount(self) -> None:
        # Kept as an attribute because the session's thread posts to it; DOM queries are
        # for the UI thread only.
        self._feed = self.query_one(EventFeed)
        for pane in PANES:
            widget = self.query_one(f"#{pane}")
            widget.border_title = PANE_TITLES[pane]
        self.query_one("#errors").display = False
        status = self.query_one(StatusBar).status
        status.store = str(self.store.path)
        status.scorer = str(self.scorers_path) if self.scorers_path else ""
        self.query_one(TraceList).empty_message = "Loading traces\u2026"
        self._apply_layout(self.size.width, self.size.height)
        self._load_rows()
        if self.scorers_path is not None:
            self._start_session()
        else:
            self.log_line("info", "No scorer module given; showing the scores stored in the store. Pass --scorers FILE to score live.")

    def on_resize(self, event: events.Resize) -> None:
        self._apply_layout(event.size.width, event.size.height)

    def _apply_layout(self, width: int, height: int) -> None:
        tabbed = width < WIDE_MIN_WIDTH or height < WIDE_MIN_HEIGHT
        self.tabbed = tabbed
        self.set_class(tabbed, "-tabbed")
        self.set_class(not tabbed, "-wide")
        self._show_active_pane()

    def _show_active_pane(self) -> None:
        for pane in PANES:
            self.query_one(f"#{pane}").set_class(pane == self.active_pane, "-active")
        self.query_one(PaneTabs).show(self.active_pane, self.has_error)

    def _focus_target(self, pane: str):
        if pane == "traces":
            return self.query_one(TraceList)
        if pane == "detail":
            return self.query_one(SpanTree)
        if pane == "scores":
            return self.query_one(ScoresPane)
        if pane == "summary":
            return self.query_one(SummaryPane)
        return self.query_one(ErrorPane) if self.has_error else self.query_one(LogPane)

    def activate_pane(self, pane: str, *, focus: bool = True) -> None:
        self.active_pane = pane
        self._show_active_pane()
        if focus:
            self._focus_target(pane).focus()
        if pane == "detail":
            self._open_current(now=True)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        node = event.widget
        while node is not None and node is not self:
            if node.id in PANES:
                if node.id != self.active_pane:
                    self.active_pane = node.id
                    self._show_active_pane()
                return
            node = node.parent

    @on(PaneTabs.TabClicked)
    def _tab_clicked(self, event: PaneTabs.TabClicked) -> None:
        self.activate_pane(event.pane)

    # --- loading -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_rows(self) -> None:
        try:
            total = self.store.count_traces(filter_string=self.filter_string, run_id=self.run_id)
            offset = 0
            limit = FIRST_PAGE
            while True:
                summaries = self.store.list_summaries(
                    filter_string=self.filter_string, run_id=self.run_id, limit=limit, offset=offset
                )
                rows = [Row.from_summary(summary) for summary in summaries]
                offset += len(rows)
                finished = len(rows) < limit
                self.post_message(RowsLoaded(rows, max(total, offset), finished))
                if finished:
                    return
                limit = PAGE_SIZE
        except Exception as error:  # noqa: BLE001 - shown on screen, never a traceback
            logger.exception("reading traces from %s failed", self.store.path)
            self.post_message(LoadFailed(error))

    @on(RowsLoaded)
    def _rows_loaded(self, message: RowsLoaded) -> None:
        trace_list = self.query_one(TraceList)
        first_page = not self.model.rows
        self.model.add_rows(message.rows)
        status = self.query_one(StatusBar).status
        status.total = message.total if not message.finished else len(self.model.rows)
        if message.finished:
            self.rows_loading = False
            trace_list.empty_message = "No traces match." if self.filter_string else "No traces."
        status.loading = self.rows_loading
        if self.model.is_filtered or self.model.sort_column != "time" or not self.model.sort_reverse:
            self.model.rebuild_view()
            trace_list.view_changed()
        else:
            self.model.view = list(self.model.rows)
            trace_list.rows_appended()
        if first_page and self.model.view:
            trace_list.cursor = 0
        self._update_status()
        if message.finished:
            self._schedule_drain()
            self._compute_stats()

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        self.rows_loading = False
        self.query_one(TraceList).empty_message = f"Reading the store failed: {visible(str(message.error))}"
        self.query_one(TraceList).refresh()
        self.notify_plain(f"Reading the store failed: {message.error}", severity="error")

    # --- the workbench session ---------------------------------------------------------------

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def _start_session(self) -> None:
        try:
            factory = self.session_factory
            if factory is None:
                # The session runs in a process of its own so that its work never holds the
                # interpreter lock the UI thread needs to handle keys.
                from tui_eval.workbench.remote import RemoteSession

                factory = RemoteSession
            session = factory(
                self.store.path, self.scorers_path, run_id=self.run_id, filter_string=self.filter_string
            )
            session.subscribe(self._session_event)
            self.session = session
            session.start()
        except Exception as error:  # noqa: BLE001 - shown in the log and a notification
            logger.exception("starting the workbench session failed")
            self.app.call_from_thread(self._session_failed, error)

    def _session_failed(self, error: BaseException) -> None:
        self.log_line("error", f"The workbench could not start: {error}")
        self.notify_plain(f"The workbench could not start: {error}", severity="error", timeout=10)

    def _session_event(self, event: Any) -> None:
        """Queue an event; runs on the session's thread and never touches a widget."""
        self._events.append(event)
        if not self._events_posted.is_set():
            self._events_posted.set()
            self._feed.post_message(WorkbenchEventsQueued())

    def _schedule_drain(self, delay: float = 0.001) -> None:
        if (self._events or self._draining is not None) and not self._drain_pending:
            self._drain_pending = True
            self._feed.set_timer(delay, self._drain_later)

    def _drain_later(self) -> None:
        self._drain_pending = False
        self._drain()

    def _input_pause(self) -> float:
        """Return how long background slices should still wait after the latest input (0 for none)."""
        now = time.perf_counter()
        since_input = now - getattr(self.app, "last_input_at", 0.0)
        if since_input >= INPUT_GRACE_SECONDS:
            self._paused_since = None
            return 0.0
        if self._paused_since is None:
            self._paused_since = now
        elif now - self._paused_since >= MAX_PAUSE_SECONDS:
            self._paused_since = None
            return 0.0
        return INPUT_GRACE_SECONDS - since_input

    def _drain(self) -> None:
        """Apply queued events until the time slice is used up, then yield to keys and paints."""
        if self.rows_loading:
            # Rows are still loading; the events wait, and the loader drains them at the end.
            return
        pause = self._input_pause()
        if pause:
            self._schedule_drain(pause)
            return
        deadline = time.perf_counter() + SLICE_SECONDS
        while time.perf_counter() < deadline:
            if self._draining is not None:
                event, trace_ids = self._draining
                batch = [trace_id for _, trace_id in zip(range(BATCH_TRACES), trace_ids)]
                if batch:
                    self._apply_batch(event, batch)
                    continue
                self._draining = None
                self._results_done(event)
                continue
            if not self._events:
                break
            self._handle_event(self._events.popleft())
        if self._events or self._draining is not None:
            self._schedule_drain()
            return
        self._events_posted.clear()
        # An event may have arrived between the last check and the clear.
        if self._events:
            self._events_posted.set()
            self._schedule_drain()

    def _handle_event(self, event: Any) -> None:
        kind = type(event).__name__
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            logger.debug("ignoring workbench event %s", kind)
            return
        handler(event)

    def _on_FilesWatched(self, event: Any) -> None:
        names = [Path(path).name for path in event.paths]
        self.query_one(StatusBar).status.watched = names
        self.log_line("reload", "watching " + ", ".join(str(path) for path in event.paths))
        self._update_status()

    def _on_GenerationStarted(self, event: Any) -> None:
        self.model.begin_generation(event.generation)
        self._generation_started_at = time.perf_counter()
        self._generation_reason = getattr(event, "reason", "change")
        self._finished_generation = None
        status = self.query_one(StatusBar).status
        status.generation = event.generation
        status.scoring = True
        status.done = 0
        status.to_do = event.trace_count
        reason = getattr(event, "reason", "change")
        self.log_line("reload", f"generation {event.generation} started ({reason}): {event.module_path}")
        self._update_status()

    def _on_ResultsReceived(self, event: Any) -> None:
        if event.generation != self.model.generation:
            return
        self._draining = (event, iter(list(event.results)))

    def _apply_batch(self, event: Any, trace_ids: list[str]) -> None:
        if type(event).__name__ == "ResultsRestored":
            self.model.load_scores(event.results, event.generation, trace_ids)
            self._schedule_paint(everything=True)
            return
        if event.generation != self.model.generation:
            return
        touched = self.model.apply_results(event.generation, event.results, trace_ids)
        self._dirty_ids.update(row.trace_id for row in touched)
        self._schedule_paint()

    def _results_done(self, event: Any) -> None:
        if type(event).__name__ == "ResultsRestored":
            self._restored_done(event)
            return
        if event.generation != self.model.generation:
            return
        status = self.query_one(StatusBar).status
        status.done = event.done
        status.to_do = event.total
        self._schedule_paint()

    def _on_ResultsRestored(self, event: Any) -> None:
        self.model.generation = max(self.model.generation, event.generation)
        self._draining = (event, iter(list(event.results)))

    def _restored_done(self, event: Any) -> None:
        self.metrics = dict(event.metrics or {})
        self.query_one(StatusBar).status.generation = event.generation
        self.log_line("reload", f"restored the scores of generation {event.generation} from the store")
        self._view_after_scores()
        self._compute_stats()

    def _on_GenerationFinished(self, event: Any) -> None:
        status = self.query_one(StatusBar).status
        if event.generation != self.model.generation:
            return
        status.scoring = False
        status.done = status.to_do
        if not event.final:
            return
        self.model.finish_generation(event.generation, getattr(event, "scorer_names", ()))
        self.metrics = dict(event.metrics or {})
        self.stale = False
        self._set_error(None)
        self._finished_generation = event.generation
        changed = self.model.changed_rows()
        self.log_line(
            "reload",
            f"generation {event.generation} finished in {event.elapsed_s * 1000:.0f} ms: {changed} rows changed",
        )
        self.notify_plain(f"Generation {event.generation}: {changed:,} rows changed", timeout=3)
        self._view_after_scores()
        # The last results go on screen now rather than on the next paint tick.
        self._paint_now()
        self._compute_stats()

    def _on_ReloadFailed(self, event: Any) -> None:
        self.last_reload_error = event
        self.stale = True
        self._set_error(event)
        status = self.query_one(StatusBar).status
        status.scoring = False
        where = f"{event.path}:{event.line}" if event.line else str(event.path)
        self.log_line("error", f"reload failed at {where}: {event.message}")
        self.notify_plain(f"Reload failed: {where}: {event.message}", severity="error", timeout=6)
        self._schedule_paint(everything=True)

    def _on_WorkerOutput(self, event: Any) -> None:
        self.log_line(event.stream, event.line)

    def _on_GenerationCancelled(self, event: Any) -> None:
        self.log_line("reload", f"generation {event.generation} cancelled")

    def _set_error(self, event: Any | None) -> None:
        errors = self.query_one(ErrorPane)
        self.has_error = event is not None
        errors.display = self.has_error
        self.set_class(self.has_error, "-has-error")
        if event is None:
            errors.clear_error()
        else:
            errors.show_error(event.path, event.line, event.message, event.traceback)
        self.query_one(TraceList).stale = self.stale
        self._show_active_pane()

    def _view_after_scores(self) -> None:
        model = self.model
        trace_list = self.query_one(TraceList)
        if model.is_filtered or model.sort_column.startswith(SCORE_PREFIX):
            current = trace_list.current_row
            model.rebuild_view()
            trace_list.view_changed(current.trace_id if current else None)
        self._schedule_paint(everything=True)

    # --- painting ----------------------------------------------------------------------------

    def _schedule_paint(self, everything: bool = False) -> None:
        self._dirty_all = self._dirty_all or everything
        if self._paint_timer is None:
            self._paint_timer = self.set_timer(PAINT_INTERVAL, self._paint)

    def _paint_now(self) -> None:
        if self._paint_timer is not None:
            self._paint_timer.stop()
        self._paint()

    def _paint(self) -> None:
        self._paint_timer = None
        trace_list = self.query_one(TraceList)
        trace_list.stale = self.stale
        # Only rows on screen are redrawn; most of a generation's rows are scrolled out of view.
        trace_list.refresh_rows(None if self._dirty_all else self._dirty_ids)
        current = trace_list.current_row
        if current is not None and (self._dirty_all or current.trace_id in self._dirty_ids):
            self._show_scores(current)
        self._dirty_ids = set()
        self._dirty_all = False
        self._update_status()
        self.last_paint_at = time.perf_counter()
        if self._finished_generation is not None:
            # NOTE: the time runs from the moment GenerationStarted arrives, so the file
            # watcher's debounce between the save and that event (about 50 ms) is not counted.
            self.painted_generation = self._finished_generation
            self._finished_generation = None
            if self._generation_started_at is not None:
                self.reload_latency_ms = (self.last_paint_at - self._generation_started_at) * 1000
                status = self.query_one(StatusBar).status
                status.last_reload_ms = self.reload_latency_ms
                status.last_reload_reason = self._generation_reason
                self._generation_started_at = None
            self._update_status()

    def _update_status(self) -> None:
        bar = self.query_one(StatusBar)
        status = bar.status
        model = self.model
        status.shown = len(model.view)
        if not self.rows_loading:
            status.total = len(model.rows)
        status.stale = self.stale
        status.filter_text = model.query.text if model.query else ""
        status.toggles = [name for name, on in (("changed", model.only_changed), ("failures", model.only_failures)) if on]
        bar.show()
        self.query_one(TraceList).border_title = f"Traces {len(model.view):,}" + (
            f"/{len(model.rows):,}" if model.is_filtered else ""
        )

    def _compute_stats(self) -> None:
        """Count the summary's statistics in slices on the UI thread, between keys and paints.

        A thread would hold the interpreter lock the UI thread needs for as long as the
        counting takes (most of a second for 100,000 rows), so keys would wait.
        """
        self._stats_token += 1
        self._stats_job = (self._stats_token, self.model.stats_steps())
        if not self._stats_pending:
            self._stats_pending = True
            self._feed.set_timer(0.001, self._step_stats)

    def _step_stats(self) -> None:
        self._stats_pending = False
        job = self._stats_job
        if job is None:
            return
        token, steps = job
        pause = self._input_pause()
        if pause:
            self._stats_pending = True
            self._feed.set_timer(pause, self._step_stats)
            return
        deadline = time.perf_counter() + SLICE_SECONDS
        while time.perf_counter() < deadline:
            try:
                next(steps)
            except StopIteration as done:
                self._stats_job = None
                current, previous, changed = done.value
                self.post_message(StatsComputed(current, previous, changed, token))
                return
        self._stats_pending = True
        self._feed.set_timer(0.001, self._step_stats)

    @on(StatsComputed)
    def _stats_computed(self, message: StatsComputed) -> None:
        if message.token != self._stats_token:
            return
        self.query_one(SummaryPane).show_stats(
            message.current,
            message.previous,
            rows_changed=message.rows_changed,
            total_rows=len(self.model.rows),
            generation=self.model.generation,
            metrics=self.metrics,
        )

    # --- the cursor and the detail -----------------------------------------------------------

    @on(TraceList.TraceHighlighted)
    def _trace_highlighted(self, event: TraceList.TraceHighlighted) -> None:
        # The cursor line is painted first; the panes that follow it are redrawn a frame
        # later, and only once when keys repeat quickly.
        if self._follow_timer is not None:
            self._follow_timer.stop()
        self._follow_timer = self.set_timer(FOLLOW_DELAY, self._follow_cursor)

    def _follow_cursor(self) -> None:
        self._follow_timer = None
        row = self.query_one(TraceList).current_row
        self._show_scores(row)
        if self.session is not None:
            self._send_visible()
        if not self.tabbed or self.active_pane == "detail":
            self._open_current()

    @on(TraceList.TraceSelected)
    def _trace_selected(self, event: TraceList.TraceSelected) -> None:
        self.activate_pane("detail")

    @on(TraceList.SortRequested)
    def _sort_requested(self, event: TraceList.SortRequested) -> None:
        self._sort(event.column)

    def _show_scores(self, row: Row | None) -> None:
        self.query_one(ScoresPane).show_row(row, list(self.model.columns), stale=self.stale)

    def _send_visible(self) -> None:
        trace_list = self.query_one(TraceList)
        top = int(trace_list.scroll_y)
        ids = [row.trace_id for row in self.model.view[top: top + trace_list.size.height]]
        try:
            self.session.set_visible(ids)
        except Exception:  # noqa: BLE001 - ordering is a hint; scoring goes on without it
            logger.debug("set_visible failed", exc_info=True)

    def _open_current(self, now: bool = False) -> None:
        row = self.query_one(TraceList).current_row
        detail = self.query_one(DetailPane)
        if row is None:
            if self._detail_timer is not None:
                self._detail_timer.stop()
            if detail.trace is not None or detail.loading_id is not None:
                detail.show_trace(None)
            return
        if detail.trace is not None and detail.trace.info.trace_id == row.trace_id:
            return
        if detail.loading_id == row.trace_id:
            return
        if self._detail_timer is not None:
            self._detail_timer.stop()
        if now:
            self._read_trace(row.trace_id)
        else:
            self._detail_timer = self.set_timer(DETAIL_DELAY, lambda: self._read_trace(row.trace_id))

    def _read_trace(self, trace_id: str) -> None:
        self._detail_timer = None
        self.query_one(DetailPane).show_loading(trace_id)
        self._read_trace_worker(trace_id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _read_trace_worker(self, trace_id: str) -> None:
        try:
            trace = self.store.get_trace(trace_id)
        except Exception as error:  # noqa: BLE001 - shown in the detail pane
            logger.exception("reading trace %s failed", trace_id)
            self.post_message(TraceLoaded(trace_id, None, error))
            return
        self.post_message(TraceLoaded(trace_id, trace))

    @on(TraceLoaded)
    def _trace_loaded(self, message: TraceLoaded) -> None:
        detail = self.query_one(DetailPane)
        if detail.loading_id != message.trace_id:
            return
        if message.error is not None:
            detail.show_trace(None, missing_id=message.trace_id)
            self.notify_plain(f"Reading trace {message.trace_id} failed: {message.error}", severity="error")
            return
        self._show_all = False
        detail.show_trace(message.trace, missing_id=message.trace_id)

    @on(SpanTree.SpanHighlighted)
    def _span_highlighted(self, event: SpanTree.SpanHighlighted) -> None:
        self._show_all = False
        self.query_one(SpanView).show_span(event.span, event.span_tree.trace_start_ns)

    def action_show_all(self) -> None:
        tree = self.query_one(SpanTree)
        view = self.query_one(SpanView)
        if tree.current_span is None:
            return
        self._show_all = not self._show_all
        view.show_span(tree.current_span, tree.trace_start_ns, show_all=self._show_all)

    # --- the filter --------------------------------------------------------------------------

    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        self._filter_before = self.model.query.text if self.model.query else ""
        bar.value = self._filter_before
        bar.add_class("-open")
        bar.focus()
        bar.cursor_position = len(bar.value)

    def _close_filter_bar(self) -> None:
        bar = self.query_one(FilterBar)
        bar.remove_class("-open")
        if self.tabbed:
            self.activate_pane("traces")
        else:
            self._focus_target(self.active_pane).focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._apply_filter(event.value):
            self._close_filter_bar()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if len(self.model.rows) <= LIVE_FILTER_ROWS:
            self._apply_filter(event.value, quiet=True)

    def _apply_filter(self, text: str, *, quiet: bool = False) -> bool:
        try:
            query = compile_query(text, self.model.columns)
        except FilterError as error:
            if not quiet:
                self.notify_plain(str(error), severity="error", timeout=6)
            if text != self._filter_before:
                # While the text is invalid the list shows what it showed before the bar
                # opened, not whatever a half-typed prefix of the text matched.
                self._apply_filter(self._filter_before, quiet=True)
            return False
        new_text = query.text if query else ""
        old_text = self.model.query.text if self.model.query else ""
        if new_text == old_text:
            return True
        trace_list = self.query_one(TraceList)
        current = trace_list.current_row
        self.model.set_query(query)
        trace_list.view_changed(current.trace_id if current else None)
        self._update_status()
        return True

    def action_next_match(self) -> None:
        self._step_match(1)

    def action_previous_match(self) -> None:
        self._step_match(-1)

    def _step_match(self, step: int) -> None:
        trace_list = self.query_one(TraceList)
        if not self.model.view:
            self.notify_plain("No trace matches the filter.", timeout=2)
            return
        trace_list.cursor = (trace_list.cursor + step) % len(self.model.view)
        if self.active_pane == "detail" or not self.tabbed:
            self._open_current(now=True)

    # --- other actions -----------------------------------------------------------------------

    def action_back(self) -> None:
        bar = self.query_one(FilterBar)
        if bar.has_class("-open"):
            # Esc cancels the edit: the filter goes back to what it was when the bar opened.
            self._apply_filter(self._filter_before, quiet=True)
            self._close_filter_bar()
            return
        if self.active_pane != "traces" or not self.query_one(TraceList).has_focus:
            self.activate_pane("traces")
            return
        if self.model.is_filtered:
            self.model.query = None
            self.model.only_changed = False
            self.model.only_failures = False
            self._rebuild_keep_cursor()
            self.notify_plain("Filter cleared.", timeout=2)

    def action_next_pane(self) -> None:
        self._cycle_pane(1)

    def action_previous_pane(self) -> None:
        self._cycle_pane(-1)

    def _cycle_pane(self, step: int) -> None:
        if self.query_one(FilterBar).has_class("-open"):
            self.query_one(FilterBar).remove_class("-open")
        index = PANES.index(self.active_pane)
        self.activate_pane(PANES[(index + step) % len(PANES)])

    def action_show_pane(self, pane: str) -> None:
        if pane in PANES:
            self.activate_pane(pane)

    def action_toggle_changed(self) -> None:
        self.model.only_changed = not self.model.only_changed
        self._rebuild_keep_cursor()
        self.notify(
            "Showing rows changed in the last generation." if self.model.only_changed else "Showing all rows.",
            markup=False,
            timeout=2,
        )

    def action_toggle_failures(self) -> None:
        self.model.only_failures = not self.model.only_failures
        self._rebuild_keep_cursor()
        self.notify(
            "Showing failures only (False, no, errors)." if self.model.only_failures else "Showing all rows.",
            markup=False,
            timeout=2,
        )

    def _rebuild_keep_cursor(self) -> None:
        trace_list = self.query_one(TraceList)
        current = trace_list.current_row
        self.model.rebuild_view()
        trace_list.view_changed(current.trace_id if current else None)
        self._update_status()

    def action_sort_next(self) -> None:
        columns = self.model.sort_columns()
        try:
            index = columns.index(self.model.sort_column)
        except ValueError:
            index = -1
        self._sort(columns[(index + 1) % len(columns)])

    def action_sort_reverse(self) -> None:
        self._sort(self.model.sort_column, reverse=not self.model.sort_reverse)

    def _sort(self, column: str, reverse: bool | None = None) -> None:
        trace_list = self.query_one(TraceList)
        current = trace_list.current_row
        self.model.sort_by(column, reverse)
        trace_list.view_changed(current.trace_id if current else None)
        order = "descending" if self.model.sort_reverse else "ascending"
        title = column[len(SCORE_PREFIX):] if column.startswith(SCORE_PREFIX) else column
        self.notify_plain(f"Sorted by {title}, {order}.", timeout=2)
        self._update_status()

    def action_rescore(self) -> None:
        if self.session is None:
            self.notify_plain("No scorer module: start with --scorers FILE to score.", severity="warning")
            return
        self.log_line("reload", "rescore requested")
        threading.Thread(target=self.session.rescore, name="tui-eval-rescore", daemon=True).start()

    def action_edit_scorer(self) -> None:
        if self.scorers_path is None:
            self.notify_plain("No scorer module: start with --scorers FILE to edit one.", severity="warning")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        command = [*shlex.split(editor), str(self.scorers_path)]
        self.log_line("reload", f"editing {self.scorers_path} with {editor}")
        try:
            driver = self.app._driver
            if driver is not None and driver.can_suspend:
                with self.app.suspend():
                    code = subprocess.call(command)
            else:
                # Headless runs (tests) cannot hand the terminal over; the editor runs detached.
                code = subprocess.call(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as error:
            self.notify_plain(f"Cannot run the editor {editor!r}: {error}. Set $EDITOR.", severity="error")
            return
        if code != 0:
            self.notify_plain(f"The editor {editor!r} exited with status {code}.", severity="warning")

    def action_export(self) -> None:
        from tui_eval.tui.export_screen import ExportScreen

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        default = str(Path.cwd() / f"tui_eval-view-{stamp}.csv")
        self.app.push_screen(ExportScreen(default, len(self.model.view)), self._export_to)

    def _export_to(self, path: str | None) -> None:
        if not path:
            return
        self._export_worker(Path(path).expanduser(), list(self.model.view), list(self.model.columns))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export_worker(self, path: Path, rows: list[Row], columns: list[str]) -> None:
        try:
            count = write_view(path, rows, columns)
        except (OSError, TuiEvalError) as error:
            self.app.call_from_thread(self.notify_plain, f"Export failed: {error}", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify_plain, f"Exported {count:,} rows to {path}", timeout=5)
        self.app.call_from_thread(self.log_line, "export", f"wrote {count} rows to {path}")

    def action_help(self) -> None:
        from tui_eval.tui.help_screen import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_command_palette(self) -> None:
        self.app.action_command_palette()

    def action_quit(self) -> None:
        self.app.exit()

    # --- log ---------------------------------------------------------------------------------

    def notify_plain(self, message: str, **options: Any) -> None:
        """Notify with ``message`` shown as written: no markup, control characters made visible."""
        self.notify(visible(message), markup=False, **options)

    def log_line(self, source: str, line: str) -> None:
        self.query_one(LogPane).add_line(source, line)

    def on_unmount(self) -> None:
        self.stop_session()

    def stop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                session.stop()
            except Exception:  # noqa: BLE001 - quitting must not fail
                logger.exception("stopping the workbench session failed")
