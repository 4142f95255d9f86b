"""The scoring core: run scorers over items and turn every result into Feedback.

It never touches the store and never lets a scorer's exception escape, so the hot-reload
workbench can run it in a worker process and ``evaluate`` can run it on a thread pool.
Speed matters here: a scorer's injection plan and assessment source are prepared once per
call of ``score_items``, and a plain result becomes a Feedback without any copying.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import traceback
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui_eval.entities.assessment import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
)
from tui_eval.errors import ScorerLoadError, TuiEvalError
from tui_eval.genai.aggregation import compute_counts, compute_metrics, validate_aggregations
from tui_eval.genai.scorers import Scorer, ScorerResultError, ScorerSignatureError, check_result, injection_plan, is_unnamed

logger = logging.getLogger(__name__)

SCORER_ERROR_CODE = "SCORER_ERROR"

# Frames in these directories are dropped from the front of a scorer's traceback, so the
# stack trace starts at the user's own code.
_INTERNAL_DIRECTORIES = (
    *(os.path.dirname(path) + os.sep for path in (__file__, asyncio.__file__, concurrent.futures.__file__)),
    # The workbench worker calls scorers too; named by path, because genai never imports workbench.
    os.path.join(os.path.dirname(os.path.dirname(__file__)), "workbench") + os.sep,
)


@dataclass(slots=True)
class ScoringItem:
    """The values one trace offers to scorers."""

    trace_id: str | None
    inputs: Any = None
    outputs: Any = None
    expectations: dict[str, Any] = field(default_factory=dict)
    trace: Any = None

    # Session-level scorers are not supported yet, so a ``session`` parameter receives None.
    @property
    def session(self) -> None:
        return None


def item_from_trace(trace: Any) -> ScoringItem:
    """Build a ScoringItem from a stored trace: root span inputs/outputs and its expectations."""
    root = trace.data.root_span
    expectations: dict[str, Any] = {}
    for assessment in trace.info.assessments:
        if isinstance(assessment, Expectation) and assessment.valid is not False:
            expectations[assessment.name] = assessment.value
    return ScoringItem(
        trace_id=trace.info.trace_id,
        inputs=root.inputs if root is not None else None,
        outputs=root.outputs if root is not None else None,
        expectations=expectations,
        trace=trace,
    )


class PreparedScorer:
    """A scorer with everything a call needs worked out once: what to call and with which names."""

    __slots__ = ("scorer", "name", "names", "problem", "function", "source")

    def __init__(self, scorer: Scorer):
        plan = injection_plan(scorer)
        self.scorer = scorer
        self.name: str = scorer.name
        self.names = plan.names
        self.problem = plan.problem
        self.function = plan.target(scorer)
        # One source object per scorer, shared by its feedback; nothing mutates it.
        self.source = AssessmentSource(AssessmentSourceType.CODE, self.name)

    def score(self, item: ScoringItem) -> list[Feedback] | None:
        """Run the scorer on one item; None when the scorer returned None (no feedback)."""
        try:
            if self.problem is not None:
                raise ScorerSignatureError(self.problem)
            value = self.function(**{name: getattr(item, name) for name in self.names})
            value_type = type(value)
            if value_type is bool or value_type is int or value_type is float or value_type is str:
                return [Feedback(self.name, value, source=self.source, trace_id=item.trace_id)]
            return self._to_feedback(check_result(self.name, value), item.trace_id)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a scorer's failure becomes its cell
            return [self.error_feedback(exc, item.trace_id)]

    def _to_feedback(self, value: Any, trace_id: str | None) -> list[Feedback] | None:
        if value is None:
            return None
        if isinstance(value, (bool, int, float, str)):
            return [Feedback(self.name, value, source=self.source, trace_id=trace_id)]
        results = value if type(value) is list else [value]
        feedbacks = []
        for result in results:
            if not isinstance(result, Feedback):
                raise ScorerResultError(
                    f"scorer {self.name!r} returned {type(result).__name__} {result.name!r}: scorers return "
                    "Feedback; put expected values in the data's expectations instead"
                )
            feedback = clone_feedback(result)
            if is_unnamed(feedback):
                feedback.name = self.name
            feedback.trace_id = trace_id
            feedbacks.append(feedback)
        return feedbacks

    def error_feedback(self, exc: BaseException, trace_id: str | None) -> Feedback:
        """Build the error Feedback of a failed call: SCORER_ERROR, the message, the user's traceback."""
        if isinstance(exc, TuiEvalError):
            message = str(exc)
        else:
            text = str(exc)
            message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        error = AssessmentError(SCORER_ERROR_CODE, message, user_traceback(exc))
        return Feedback(self.name, None, error=error, source=self.source, trace_id=trace_id)


def clone_feedback(feedback: Feedback) -> Feedback:
    """Copy a Feedback shallowly, so a scorer that returns one object twice gets two cells."""
    if type(feedback) is not Feedback:
        import copy

        return copy.copy(feedback)
    clone = object.__new__(Feedback)
    for slot in _FEEDBACK_SLOTS:
        try:
            object.__setattr__(clone, slot, getattr(feedback, slot))
        except AttributeError:
            pass
    return clone


_FEEDBACK_SLOTS = tuple(
    slot for cls in Feedback.__mro__ for slot in getattr(cls, "__slots__", ()) if not slot.startswith("__")
)


def user_traceback(exc: BaseException) -> str:
    """Format an exception's traceback starting at the first frame outside tui_eval's scoring code."""
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL_DIRECTORIES):
        tb = tb.tb_next
    if tb is None:
        return "".join(traceback.format_exception_only(type(exc), exc))
    return "".join(traceback.format_exception(type(exc), exc, tb))


def prepare_scorers(scorers: Sequence[Scorer]) -> list[PreparedScorer]:
    """Prepare each scorer once for many calls (see ``PreparedScorer``)."""
    return [PreparedScorer(item) for item in scorers]


def run_scorer(scorer: Scorer, item: ScoringItem) -> list[Feedback]:
    """Run one scorer on one item and return its Feedback.

    It raises nothing for a scorer's failure (only KeyboardInterrupt passes through). A scorer that returns None yields an empty list. A raise, an invalid result or a parameter
    that cannot be filled yields one Feedback with error code ``SCORER_ERROR``.
    """
    return PreparedScorer(scorer).score(item) or []


def score_items(
    scorers: Sequence[Scorer],
    items: Iterable[ScoringItem],
    *,
    none_counts: dict[str, int] | None = None,
) -> Iterator[tuple[str | None, list[Feedback]]]:
    """Score every item with every scorer, yielding ``(trace_id, feedbacks)`` in item order.

    Within an item, feedback comes in scorer order. When ``none_counts`` is given, it counts
    per scorer name the items where the scorer returned None, for ``compute_counts``.
    """
    prepared = prepare_scorers(scorers)
    with frozen_garbage_collector():
        for item in items:
            feedbacks: list[Feedback] = []
            for entry in prepared:
                result = entry.score(item)
                if result is None:
                    if none_counts is not None:
                        none_counts[entry.name] = none_counts.get(entry.name, 0) + 1
                else:
                    feedbacks.extend(result)
            yield item.trace_id, feedbacks


@contextlib.contextmanager
def frozen_garbage_collector() -> Iterator[None]:
    """Keep the objects alive now (loaded traces) out of garbage collection while scoring runs.

    Every Feedback is a tracked object, so scoring many traces triggers full collections that
    would scan every loaded trace each time; on 100,000 traces that doubled the scoring time.
    Nothing happens when someone else has already frozen objects.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def discover_scorers(module: types.ModuleType) -> list[Scorer]:
    """Find a module's scorers: its ``SCORERS`` list if it defines one, else every module-level Scorer.

    Module-level scorers come in definition order; an object bound to two names counts once.
    Raises ``ScorerLoadError`` if ``SCORERS`` contains something that is not a Scorer instance.
    """
    module_name = getattr(module, "__name__", repr(module))
    declared = getattr(module, "SCORERS", None)
    if declared is not None:
        if not isinstance(declared, (list, tuple)):
            raise ScorerLoadError(
                f"SCORERS in {module_name} is a {type(declared).__name__}: make it a list of scorers"
            )
        for position, candidate in enumerate(declared):
            if not isinstance(candidate, Scorer):
                hint = ""
                if isinstance(candidate, type) and issubclass(candidate, Scorer):
                    hint = f"; list an instance, {candidate.__name__}(), not the class"
                raise ScorerLoadError(
                    f"SCORERS[{position}] in {module_name} is a {type(candidate).__name__}, not a scorer{hint}"
                )
        return list(declared)

    found: list[Scorer] = []
    seen: set[int] = set()
    for value in vars(module).values():
        if isinstance(value, Scorer) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


__all__ = [
    "SCORER_ERROR_CODE",
    "PreparedScorer",
    "ScoringItem",
    "compute_counts",
    "compute_metrics",
    "discover_scorers",
    "item_from_trace",
    "prepare_scorers",
    "run_scorer",
    "score_items",
    "user_traceback",
    "validate_aggregations",
]
