"""The `/` filter language of the trace list, compiled to a predicate over list rows.

A filter is a list of terms that must all hold (``and`` between terms is optional):

- free text, bare or quoted (``refund``, ``"not found"``): a case-insensitive substring of the
  trace id, name, request preview or response preview;
- ``changed``: a score cell changed in the last generation;
- ``error``: a scorer returned an error for the trace;
- ``fail`` (also ``failed``, ``failures``): a cell failed (False, "no" or an error);
- ``NAME OP VALUE`` with OP one of ``= == != < <= > >= ~``: compares a scorer's cell or a
  field (``duration`` in ms or with a unit, ``tokens``, ``spans``, ``state``, ``name``,
  ``request``, ``response``, ``trace_id``). VALUE is a number, ``true``/``false``,
  ``yes``/``no``, ``none``, ``nan``, ``error`` or text; ``~`` tests a substring;
- ``not TERM``, ``!TERM`` or ``-TERM`` negates a term.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from tui_eval.errors import FilterError
from tui_eval.tui.render import CellKind, cell_kind, cell_number
from tui_eval.workbench.results import CELL_ERROR_CODE, CELL_VALUE

# A predicate takes a tui_eval.tui.model.Row: its fields, ``scores`` and ``changed``.
Predicate = Callable[[Any], bool]

FIELDS = ("duration", "tokens", "spans", "state", "name", "request", "response", "trace_id")
_COMPARISON = re.compile(r"^(?P<name>[^<>=!~]+?)\s*(?P<op>==|!=|<=|>=|=|<|>|~)\s*(?P<value>.*)$", re.DOTALL)
_DURATION = re.compile(r"^(?P<number>[-+]?\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|min)?$", re.IGNORECASE)
_UNIT_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "min": 60_000.0}
_FAILING = (CellKind.FAIL, CellKind.ERROR)


@dataclass(frozen=True, slots=True)
class Query:
    """A compiled filter: its source text and the predicate."""

    text: str
    predicate: Predicate
    uses_scores: bool

    def __call__(self, row: Any) -> bool:
        return self.predicate(row)


def compile_query(text: str, score_names: Collection[str] | None = None) -> Query | None:
    """Compile filter text; return None for an empty filter, raise FilterError when invalid.

    With ``score_names`` (the score columns on screen), a comparison on any other name is
    invalid, so that a typo gets an error instead of silently matching no trace.
    """
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError as exc:
        raise FilterError(f"invalid filter {text!r}: {exc}; close the quote or remove it") from None
    predicates: list[Predicate] = []
    uses_scores = False
    negate = False
    for token in tokens:
        lowered = token.lower()
        if lowered in ("and", "&&"):
            continue
        if lowered == "not":
            negate = not negate
            continue
        if len(token) > 1 and token[0] in "!-" and not _looks_numeric(token):
            negate = not negate
            token = token[1:]
            lowered = token.lower()
        predicate, scores = _compile_term(token, lowered, text, score_names)
        uses_scores = uses_scores or scores
        if negate:
            predicate = _negated(predicate)
            negate = False
        predicates.append(predicate)
    if negate:
        raise FilterError(f"invalid filter {text!r}: 'not' must be followed by a term")
    if not predicates:
        return None
    if len(predicates) == 1:
        return Query(text, predicates[0], uses_scores)
    return Query(text, lambda row: all(predicate(row) for predicate in predicates), uses_scores)


def _looks_numeric(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _negated(predicate: Predicate) -> Predicate:
    return lambda row: not predicate(row)


def _compile_term(
    token: str, lowered: str, source: str, score_names: Collection[str] | None = None
) -> tuple[Predicate, bool]:
    if lowered == "changed":
        return (lambda row: bool(row.changed)), True
    if lowered in ("error", "errors"):
        return (lambda row: any(cell[CELL_ERROR_CODE] is not None for cell in row.scores.values())), True
    if lowered in ("fail", "failed", "failure", "failures"):
        return row_fails, True
    match = _COMPARISON.match(token)
    if match:
        return _compile_comparison(match["name"].strip(), match["op"], match["value"].strip(), source, score_names)
    needle = lowered
    return (lambda row: _text_contains(row, needle)), False


def row_fails(row: Any) -> bool:
    """Whether any of the row's cells failed: False, "no" or an error."""
    return any(cell_kind(cell) in _FAILING for cell in row.scores.values())


def _text_contains(row: Any, needle: str) -> bool:
    return (
        needle in row.request.lower()
        or needle in row.name.lower()
        or needle in row.response.lower()
        or needle in row.trace_id.lower()
    )


def _compile_comparison(
    name: str, op: str, raw: str, source: str, score_names: Collection[str] | None = None
) -> tuple[Predicate, bool]:
    if not raw:
        raise FilterError(f"invalid filter {source!r}: {name}{op} needs a value, as in {name}{op}0.5")
    field = name.lower()
    if field in FIELDS:
        return _compile_field(field, op, raw, source), False
    if score_names is not None and name not in score_names:
        scores = ", ".join(sorted(score_names)) or "none yet"
        raise FilterError(
            f"invalid filter {source!r}: no score or field named {name!r}; "
            f"scores: {scores}; fields: {', '.join(sorted(FIELDS))}"
        )
    return _compile_score(name, op, raw, source), True


def _compile_field(field: str, op: str, raw: str, source: str) -> Predicate:
    if field in ("duration", "tokens", "spans"):
        if field == "duration":
            match = _DURATION.match(raw)
            if not match:
                raise FilterError(
                    f"invalid filter {source!r}: duration needs a number of ms or a unit (ms, s, m), got {raw!r}"
                )
            number = float(match["number"]) * _UNIT_MS[(match["unit"] or "").lower() or None]
        else:
            try:
                number = float(raw)
            except ValueError:
                raise FilterError(f"invalid filter {source!r}: {field} needs a number, got {raw!r}") from None
        attribute = {"duration": "duration_ms", "tokens": "tokens", "spans": "spans"}[field]
        compare = _numeric_operator(op, source)

        def numeric_field(row: Any) -> bool:
            value = getattr(row, attribute)
            return value is not None and compare(float(value), number)

        return numeric_field
    wanted = raw.lower()
    attribute = field

    if op == "~":
        return lambda row: wanted in str(getattr(row, attribute)).lower()
    if op in ("=", "=="):
        return lambda row: str(getattr(row, attribute)).lower() == wanted
    if op == "!=":
        return lambda row: str(getattr(row, attribute)).lower() != wanted
    raise FilterError(f"invalid filter {source!r}: {field} is text, compare it with =, != or ~")


def _numeric_operator(op: str, source: str) -> Callable[[float, float], bool]:
    operators: dict[str, Callable[[float, float], bool]] = {
        "=": lambda a, b: a == b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    if op not in operators:
        raise FilterError(f"invalid filter {source!r}: {op} does not apply to numbers; use = != < <= > >=")
    return operators[op]


def _compile_score(name: str, op: str, raw: str, source: str) -> Predicate:
    wanted = raw.lower()
    marks = {"error": CellKind.ERROR, "none": CellKind.NONE, "null": CellKind.NONE, "nan": CellKind.NAN}
    if wanted in marks and op in ("=", "==", "!="):
        kind = marks[wanted]

        def is_kind(row: Any) -> bool:
            return cell_kind(row.scores.get(name)) is kind

        return is_kind if op != "!=" else _negated(is_kind)
    if op == "~":

        def contains(row: Any) -> bool:
            cell = row.scores.get(name)
            return cell is not None and cell[CELL_ERROR_CODE] is None and wanted in str(cell[CELL_VALUE]).lower()

        return contains
    boolean = {"true": 1.0, "yes": 1.0, "pass": 1.0, "false": 0.0, "no": 0.0}.get(wanted)
    if boolean is not None:
        number: float | None = boolean
    else:
        try:
            number = float(raw)
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        if op not in ("=", "==", "!="):
            raise FilterError(f"invalid filter {source!r}: {op} needs a number, got {raw!r}")

        def text_equals(row: Any) -> bool:
            cell = row.scores.get(name)
            return cell is not None and cell[CELL_ERROR_CODE] is None and str(cell[CELL_VALUE]).lower() == wanted

        return text_equals if op != "!=" else _negated(text_equals)
    compare = _numeric_operator(op, source)
    target = number

    def score_compare(row: Any) -> bool:
        value = cell_number(row.scores.get(name))
        return value is not None and compare(value, target)

    return score_compare
