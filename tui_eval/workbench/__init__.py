"""The hot-reload workbench: rescore stored traces every time the scorer module is saved.

``Session`` is the engine the TUI and ``tui-eval score --watch`` share; it publishes the events
of ``tui_eval.workbench.events``. This package never imports Textual.
"""

from tui_eval.workbench.diff import AggregateChange, CellChange, GenerationDiff, diff_results
from tui_eval.workbench.events import (
    FilesWatched,
    GenerationCancelled,
    GenerationFinished,
    GenerationStarted,
    ReloadFailed,
    ResultsReceived,
    ResultsRestored,
    WorkbenchEvent,
    WorkerOutput,
)
from tui_eval.workbench.results import ResultTable
from tui_eval.workbench.session import Session

__all__ = [
    "AggregateChange",
    "CellChange",
    "FilesWatched",
    "GenerationCancelled",
    "GenerationDiff",
    "GenerationFinished",
    "GenerationStarted",
    "ReloadFailed",
    "ResultTable",
    "ResultsReceived",
    "ResultsRestored",
    "Session",
    "WorkbenchEvent",
    "WorkerOutput",
    "diff_results",
]
