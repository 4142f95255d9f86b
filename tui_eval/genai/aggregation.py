"""Aggregate feedback values into metrics (``exact_match/mean``) and count what was left out.

Feedback is grouped by assessment name. Numbers and bools count as floats and the strings
"yes"/"no" (any case) as 1.0/0.0, as in MLflow 3.8. NaN, infinities, None, other strings,
lists, dicts and errors are left out of every aggregate and counted instead, so one bad cell
never turns a mean into NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tui_eval.entities.assessment import Feedback
from tui_eval.errors import InvalidParameterError
from tui_eval.genai.scorers import NOT_SCALAR, Scorer, plain_scalar

logger = logging.getLogger(__name__)

BUILTIN_AGGREGATIONS = ("min", "max", "mean", "median", "variance", "p90")
DEFAULT_AGGREGATIONS: tuple[str, ...] = ("mean",)

# Keys of the per-name counts that compute_counts returns.
COUNT_KEYS = ("n_scored", "n_nan", "n_none", "n_error", "n_other")

# Counts a feedback value goes to when it is not a float to aggregate.
_NAN = "n_nan"
_NONE = "n_none"
_ERROR = "n_error"
_OTHER = "n_other"


def validate_aggregations(scorers: Sequence[Scorer]) -> None:
    """Raise ``InvalidParameterError`` if any scorer lists an unknown aggregation.

    Call it before scoring starts, so a typo fails at once instead of after every trace ran.
    """
    for item in scorers:
        aggregations = getattr(item, "aggregations", None)
        if aggregations is None:
            continue
        if not isinstance(aggregations, (list, tuple)):
            raise InvalidParameterError(
                f"scorer {item.name!r} has aggregations of type {type(aggregations).__name__}: "
                f"pass a list of names ({', '.join(BUILTIN_AGGREGATIONS)}) or functions"
            )
        for aggregation in aggregations:
            if isinstance(aggregation, str):
                if aggregation not in BUILTIN_AGGREGATIONS:
                    raise InvalidParameterError(
                        f"scorer {item.name!r} has an unknown aggregation {aggregation!r}: use one of "
                        f"{', '.join(BUILTIN_AGGREGATIONS)}, or a function that takes a list of floats"
                    )
            elif not callable(aggregation):
                raise InvalidParameterError(
                    f"scorer {item.name!r} has an aggregation of type {type(aggregation).__name__}: use one of "
                    f"{', '.join(BUILTIN_AGGREGATIONS)}, or a function that takes a list of floats"
                )


def classify_value(feedback: Feedback) -> float | str:
    """Return the float a feedback contributes to aggregates, or the name of the count it goes to."""
    if feedback.error is not None:
        return _ERROR
    return _classify(feedback.value, convert=True)


def _classify(value: Any, convert: bool) -> float | str:
    value_type = type(value)
    if value_type is float or value_type is int or value_type is bool:
        number = float(value)
        return number if math.isfinite(number) else _NAN
    if value is None:
        return _NONE
    if value_type is str:
        lowered = value.lower()
        if lowered == "yes":
            return 1.0
        if lowered == "no":
            return 0.0
        return _OTHER
    if convert:
        # numpy scalars and subclasses such as IntEnum or a str enum.
        plain = plain_scalar(value)
        if plain is not NOT_SCALAR:
            return _classify(plain, convert=False)
    return _OTHER


def collect_values(feedbacks: Iterable[Any]) -> tuple[dict[str, list[float]], dict[str, dict[str, int]]]:
    """Group feedback by name into aggregatable floats and per-name counts, in first-seen order."""
    values: dict[str, list[float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for feedback in feedbacks:
        if not isinstance(feedback, Feedback) or feedback.valid is False:
            continue
        name = feedback.name
        bucket = counts.get(name)
        if bucket is None:
            bucket = counts[name] = dict.fromkeys(COUNT_KEYS, 0)
            values[name] = []
        outcome = classify_value(feedback)
        if type(outcome) is float:
            values[name].append(outcome)
            bucket["n_scored"] += 1
        else:
            bucket[outcome] += 1
    return values, counts


def compute_counts(
    feedbacks: Iterable[Any], *, none_counts: Mapping[str, int] | None = None
) -> dict[str, dict[str, int]]:
    """Count, per assessment name, the values scored and those left out (NaN, None, errors, other).

    ``none_counts`` adds cells where a scorer returned None (which yields no Feedback) to
    ``n_none``; ``score_items`` fills such a mapping when asked to.
    """
    _, counts = collect_values(feedbacks)
    if none_counts:
        add_none_counts(counts, none_counts)
    return counts


def add_none_counts(counts: dict[str, dict[str, int]], none_counts: Mapping[str, int]) -> None:
    """Add the cells where a scorer returned None to ``n_none`` of ``counts``, in place."""
    for name, number in none_counts.items():
        if number:
            bucket = counts.setdefault(name, dict.fromkeys(COUNT_KEYS, 0))
            bucket["n_none"] += number


def compute_metrics(scorers: Sequence[Scorer], feedbacks: Iterable[Any]) -> dict[str, float]:
    """Aggregate feedback into metrics keyed ``"<assessment name>/<aggregation>"``.

    The aggregations of a name come from the scorer whose name equals the part of the
    assessment name after its first "/", or the whole name if it has none. Names that match no
    scorer get ``mean``. A name without any numeric value produces no key.
    """
    values, _ = collect_values(feedbacks)
    return aggregate_values(scorers, values)


def aggregate_values(scorers: Sequence[Scorer], values: Mapping[str, list[float]]) -> dict[str, float]:
    """Apply each name's aggregations to its values; see ``compute_metrics``."""
    by_name: dict[str, Sequence[str | Callable[..., Any]]] = {}
    for item in scorers:
        if item.name not in by_name:
            by_name[item.name] = DEFAULT_AGGREGATIONS if item.aggregations is None else item.aggregations

    metrics: dict[str, float] = {}
    for name, numbers in values.items():
        if not numbers:
            continue
        aggregations = by_name.get(name.split("/", 1)[-1], DEFAULT_AGGREGATIONS)
        for aggregation in aggregations:
            if isinstance(aggregation, str):
                metrics[f"{name}/{aggregation}"] = _builtin_aggregate(aggregation, numbers)
                continue
            key = getattr(aggregation, "__name__", type(aggregation).__name__)
            try:
                metrics[f"{name}/{key}"] = float(aggregation(list(numbers)))
            except Exception:
                logger.exception("aggregation %r failed on the values of %r; its metric is left out", key, name)
    return metrics


def _builtin_aggregate(aggregation: str, numbers: list[float]) -> float:
    # numpy gives the same results as MLflow's aggregation (population variance, linear p90).
    import numpy

    if aggregation == "mean":
        return float(numpy.mean(numbers))
    if aggregation == "min":
        return float(min(numbers))
    if aggregation == "max":
        return float(max(numbers))
    if aggregation == "median":
        return float(numpy.median(numbers))
    if aggregation == "variance":
        return float(numpy.var(numbers))
    if aggregation == "p90":
        return float(numpy.percentile(numbers, 90))
    raise InvalidParameterError(
        f"unknown aggregation {aggregation!r}: use one of {', '.join(BUILTIN_AGGREGATIONS)}"
    )
