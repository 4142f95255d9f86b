"""The exception hierarchy: every error tui_eval raises on purpose derives from TuiEvalError.

Each message says what failed, on which value, and what to do next. The CLI prints the
message on one line and exits non-zero; the TUI shows it in a notification or the error pane.
"""


class TuiEvalError(Exception):
    """Base class of the errors tui_eval raises for bad input or bad state."""


class InvalidParameterError(TuiEvalError, ValueError):
    """An argument passed to the public API is invalid (MLflow's INVALID_PARAMETER_VALUE)."""


class TraceFormatError(TuiEvalError, ValueError):
    """A trace dict or JSON document cannot be read as a trace."""


class FilterError(InvalidParameterError):
    """A `filter_string` or `order_by` clause is invalid."""


class StoreError(TuiEvalError):
    """The trace store cannot be opened, read or written."""


class StoreFormatError(StoreError):
    """The file is not a tui_eval store: not SQLite, or written by a newer schema."""


class DatasetError(TuiEvalError, ValueError):
    """An evaluation dataset file or value cannot be read."""


class ScorerLoadError(TuiEvalError):
    """A scorer module cannot be imported or holds no usable scorer."""
