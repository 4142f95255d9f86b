"""Events a workbench session publishes to its subscribers.

Each event is a frozen dataclass named in the past tense for what happened. A generation
publishes ``GenerationStarted``, any number of ``ResultsReceived``, then exactly one of
``GenerationFinished``, ``GenerationCancelled`` or ``ReloadFailed``. ``WorkerOutput`` lines
of a generation come while it runs and may still come shortly after it ends.
``FilesWatched`` comes whenever the set of watched files changes, and ``ResultsRestored``
once, when a session finds the scores a previous session stored. A ``ReloadFailed`` with
generation 0 means the session cannot score at all (its traces could not be loaded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui_eval.entities.assessment import Feedback
    from tui_eval.workbench.diff import GenerationDiff


@dataclass(frozen=True)
class FilesWatched:
    """The files whose changes start a new generation, and the directories being watched."""

    paths: tuple[Path, ...]
    directories: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GenerationStarted:
    """A generation began: a fresh worker imports ``module_path`` and scores ``trace_count`` traces."""

    generation: int
    module_path: Path
    trace_count: int
    module_hash: str = ""
    reason: str = "change"  # "start", "change" or "rescore"


@dataclass(frozen=True)
class ResultsReceived:
    """A batch of scores of one generation.

    ``results`` maps trace ids to that trace's feedback in this batch; ``done`` counts the
    traces scored so far in the generation, out of ``total``.
    """

    generation: int
    results: Mapping[str, list[Feedback]]
    done: int
    total: int


@dataclass(frozen=True)
class GenerationFinished:
    """Every trace of a generation was scored.

    ``metrics`` maps ``"name/aggregation"`` to a float; ``counts`` maps each assessment name to
    ``{"n_scored", "n_nan", "n_none", "n_error", "n_other"}``. ``final`` is False when a newer
    generation was already requested when this one finished, so its results are about to be
    replaced. ``scorer_names`` lists the scorers the module defined (empty when it has none).
    ``timings`` has ``first_results_s`` and ``elapsed_s`` (from the start of the generation),
    ``worker_scoring_s`` (wall seconds workers spent scoring, summed over workers) and
    ``worker_cpu_s`` (their CPU seconds).
    """

    generation: int
    metrics: dict[str, float]
    counts: dict[str, dict[str, int]]
    diff: GenerationDiff
    elapsed_s: float
    final: bool
    scorer_names: tuple[str, ...] = ()
    module_hash: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReloadFailed:
    """The scorer module could not be loaded: a syntax error, an import error, a raise at module level.

    ``path`` and ``line`` locate the error in the user's code when it could be found (``line``
    is None otherwise); ``traceback`` is trimmed to the user's frames. The previous results
    stay and are marked stale until a generation finishes.
    """

    generation: int
    path: Path | None
    line: int | None
    message: str
    traceback: str


@dataclass(frozen=True)
class WorkerOutput:
    """One line the user's code wrote to stdout or stderr (``stream`` is "stdout" or "stderr")."""

    generation: int
    stream: str
    line: str


@dataclass(frozen=True)
class GenerationCancelled:
    """A generation was stopped before it finished, because a newer one started or the session stopped."""

    generation: int


@dataclass(frozen=True)
class ResultsRestored:
    """Scores a previous session wrote to the store, shown until the first generation finishes.

    ``generation`` is the newest generation found among them; ``metrics`` uses the default
    aggregation (mean), because the scorers' own aggregations are known only after an import.
    """

    generation: int
    results: Mapping[str, list[Feedback]]
    metrics: dict[str, float]
    counts: dict[str, dict[str, int]]
    module_hash: str = ""


WorkbenchEvent = (
    FilesWatched
    | GenerationStarted
    | ResultsReceived
    | GenerationFinished
    | ReloadFailed
    | WorkerOutput
    | GenerationCancelled
    | ResultsRestored
)

logger = logging.getLogger(__name__)


class Subscribers:
    """The callbacks subscribed to a session's events, safe to change from any thread."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[WorkbenchEvent], None]] = []
        self._lock = threading.Lock()

    def add(self, callback: Callable[[WorkbenchEvent], None]) -> Callable[[], None]:
        """Subscribe ``callback``; returns a function that unsubscribes it."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def publish(self, event: WorkbenchEvent) -> None:
        """Call every callback with ``event``; a callback that raises is logged and the rest still run."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("a workbench subscriber failed on %s", type(event).__name__)


__all__ = [
    "FilesWatched",
    "GenerationCancelled",
    "GenerationFinished",
    "GenerationStarted",
    "ReloadFailed",
    "ResultsReceived",
    "ResultsRestored",
    "Subscribers",
    "WorkbenchEvent",
    "WorkerOutput",
]

