"""MLflow's trace ``filter_string`` and ``order_by`` grammar, compiled to parameterised SQL.

A filter is one or more clauses joined by ``AND`` (there is no ``OR`` and no grouping).
Each clause is ``<entity>.<key> <comparator> <value>``; a key with no entity prefix is a
trace attribute. Keys that contain dots or other special characters go in backticks.

Semantics that differ between databases are pinned down here:

- ``LIKE`` is case-sensitive (it compiles to SQLite's ``GLOB``); ``ILIKE`` is case-insensitive
  for all of Unicode (both sides are case-folded by a registered function).
- ``RLIKE`` is a Python ``re.search`` through a registered ``REGEXP`` function.
- Tag, metadata, span and assessment clauses match when *some* row of that kind matches, as
  a SQL join does: ``span.name != 'a'`` keeps a trace that has any span not named ``a``.
- Feedback and expectation values compare as text: a string as itself, anything else as its
  JSON (``true``, ``3``, ``0.5``, ``["a"]``). Invalidated (overridden) assessments never match.

Values always travel as SQL parameters; the SQL text is built only from the fixed fragments
below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from tui_eval.errors import FilterError

FilterValue = Union[str, int, float, tuple[str, ...]]

# --- tokens -------------------------------------------------------------------------------

_WORD = "WORD"
_BACKTICK = "BACKTICK"
_STRING = "STRING"
_NUMBER = "NUMBER"
_OPERATOR = "OP"
_PUNCT = "PUNCT"

_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<>|>=|<=|==|=|>|<)
  | (?P<punct>[().,])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str  # the token's value: a word, an operator, or an unquoted string
    start: int
    end: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    length = len(source)
    while position < length:
        char = source[position]
        if char in "'\"`":
            tokens.append(_read_quoted(source, position))
            position = tokens[-1].end
            continue
        match = _TOKEN_PATTERN.match(source, position)
        if match is None:
            raise FilterError(
                f"invalid filter {source!r}: unexpected character {char!r} at position {position}. "
                + _GRAMMAR_HINT
            )
        kind = match.lastgroup
        if kind == "number":
            tokens.append(_Token(_NUMBER, match.group(), match.start(), match.end()))
        elif kind == "word":
            tokens.append(_Token(_WORD, match.group(), match.start(), match.end()))
        elif kind == "op":
            operator = {"<>": "!=", "==": "="}.get(match.group(), match.group())
            tokens.append(_Token(_OPERATOR, operator, match.start(), match.end()))
        elif kind == "punct":
            tokens.append(_Token(_PUNCT, match.group(), match.start(), match.end()))
        position = match.end()
    return tokens


def _read_quoted(source: str, start: int) -> _Token:
    """Read a quoted string or backtick key starting at ``start``.

    A quote character inside is written doubled (``'it''s'``) or backslash-escaped
    (``'it\\'s'``). Every other backslash is kept as written, so regular expressions such as
    ``'\\d+'`` need no extra escaping.
    """
    quote = source[start]
    parts: list[str] = []
    position = start + 1
    while position < len(source):
        char = source[position]
        if char == "\\" and position + 1 < len(source):
            following = source[position + 1]
            if following == quote:
                parts.append(quote)
            else:
                parts.append(char + following)
            position += 2
            continue
        if char == quote:
            if source.startswith(quote * 2, position):
                parts.append(quote)
                position += 2
                continue
            kind = _BACKTICK if quote == "`" else _STRING
            return _Token(kind, "".join(parts), start, position + 1)
        parts.append(char)
        position += 1
    what = "backtick key" if quote == "`" else "string"
    raise FilterError(
        f"invalid filter {source!r}: the {what} starting at position {start} has no closing {quote}. "
        + _GRAMMAR_HINT
    )


# --- clauses ------------------------------------------------------------------------------

ATTRIBUTE = "attribute"
TAG = "tag"
METADATA = "metadata"
SPAN = "span"
FEEDBACK = "feedback"
EXPECTATION = "expectation"

_ENTITY_ALIASES = {
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "trace": ATTRIBUTE,
    "tag": TAG,
    "tags": TAG,
    "metadata": METADATA,
    "request_metadata": METADATA,
    "span": SPAN,
    "feedback": FEEDBACK,
    "expectation": EXPECTATION,
}

_EQUALITY = ("=", "!=")
_NUMERIC_COMPARATORS = ("=", "!=", ">", ">=", "<", "<=")
_PATTERN_COMPARATORS = ("LIKE", "ILIKE", "RLIKE")
_LIST_COMPARATORS = ("IN", "NOT IN")
_STRING_COMPARATORS = _EQUALITY + _PATTERN_COMPARATORS
_STRING_AND_LIST_COMPARATORS = _EQUALITY + _LIST_COMPARATORS + _PATTERN_COMPARATORS

# Attribute keys: the comparators each accepts and, for numeric keys, the column (ms).
_NUMERIC_ATTRIBUTES = {
    "timestamp": "t.request_time",
    "timestamp_ms": "t.request_time",
    "execution_time": "t.execution_duration",
    "execution_time_ms": "t.execution_duration",
    "end_time": "t.end_time",
    "end_time_ms": "t.end_time",
}
_STRING_ATTRIBUTES = {
    "request_id": _STRING_AND_LIST_COMPARATORS,
    "trace_id": _STRING_AND_LIST_COMPARATORS,
    "client_request_id": _STRING_AND_LIST_COMPARATORS,
    "status": _STRING_AND_LIST_COMPARATORS,
    "state": _STRING_AND_LIST_COMPARATORS,
    "name": _STRING_AND_LIST_COMPARATORS,
    "run_id": _STRING_AND_LIST_COMPARATORS,
    "experiment_id": _STRING_AND_LIST_COMPARATORS,
    "prompt": ("=",),
    # MLflow allows only LIKE on trace.text; ILIKE is accepted too, as span.content has it.
    "text": ("LIKE", "ILIKE"),
}
_SPAN_KEYS = {
    "name": _STRING_AND_LIST_COMPARATORS,
    "type": _STRING_AND_LIST_COMPARATORS,
    "status": _STRING_AND_LIST_COMPARATORS,
    "content": ("LIKE", "ILIKE"),
}

TRACE_NAME_TAG = "mlflow.traceName"
LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"

_GRAMMAR_HINT = (
    "A filter is clauses joined by AND, each written <entity>.<key> <comparator> <value> with "
    "string values in quotes, for example: status = 'OK' AND tags.env = 'prod' AND "
    "timestamp_ms > 1700000000000."
)


@dataclass(frozen=True)
class Clause:
    """One parsed filter clause, with its entity resolved from any alias."""

    entity: str
    key: str
    comparator: str
    value: FilterValue
    text: str


def parse_filter(filter_string: str | None) -> list[Clause]:
    """Parse ``filter_string`` into clauses; an empty or blank string means no filter.

    Raises FilterError quoting the offending clause and saying what is valid there.
    """
    if filter_string is None or not filter_string.strip():
        return []
    tokens = _tokenize(filter_string)
    parser = _Parser(filter_string, tokens)
    return parser.parse()


class _Parser:
    def __init__(self, source: str, tokens: list[_Token]):
        self.source = source
        self.tokens = tokens
        self.index = 0

    # -- token access --

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> _Token | None:
        token = self._peek()
        if token is not None:
            self.index += 1
        return token

    def _is_word(self, token: _Token | None, *words: str) -> bool:
        return token is not None and token.kind == _WORD and token.text.upper() in words

    def _clause_text(self, start: int) -> str:
        """Return the source text of the clause starting at ``start``, up to the next AND."""
        end = len(self.source)
        for token in self.tokens:
            if token.start > start and self._is_word(token, "AND"):
                end = token.start
                break
        return self.source[start:end].strip()

    def _fail(self, start: int, problem: str, hint: str = _GRAMMAR_HINT) -> FilterError:
        return FilterError(f"invalid filter clause {self._clause_text(start)!r}: {problem}. {hint}")

    # -- grammar --

    def parse(self) -> list[Clause]:
        clauses = [self._parse_clause()]
        while self._peek() is not None:
            token = self._take()
            if self._is_word(token, "AND"):
                if self._peek() is None:
                    raise FilterError(
                        f"invalid filter {self.source!r}: it ends with AND; add a clause after it or remove it."
                    )
                clauses.append(self._parse_clause())
                continue
            if self._is_word(token, "OR"):
                raise FilterError(
                    f"invalid filter {self.source!r}: OR is not supported; only AND can join clauses. "
                    "Run one search per alternative, or use IN ('a', 'b') where the key allows it."
                )
            raise FilterError(
                f"invalid filter {self.source!r}: expected AND before {token.text!r} at position "
                f"{token.start}. {_GRAMMAR_HINT}"
            )
        return clauses

    def _parse_clause(self) -> Clause:
        first = self._peek()
        if first is None:
            raise FilterError(f"invalid filter {self.source!r}: a clause is missing. {_GRAMMAR_HINT}")
        start = first.start
        segments = self._parse_key(start)
        comparator = self._parse_comparator(start)
        value = self._parse_value(start, comparator)
        entity, key = self._resolve_key(start, segments)
        clause = Clause(entity, key, comparator, value, self._clause_text(start))
        _validate(clause)
        return clause

    def _parse_key(self, start: int) -> list[tuple[str, bool]]:
        """Read ``a.b.`c.d``` into segments, each (text, written in backticks)."""
        segments: list[tuple[str, bool]] = []
        while True:
            token = self._take()
            if token is None or token.kind not in (_WORD, _BACKTICK):
                found = "the end of the filter" if token is None else repr(token.text)
                raise self._fail(start, f"expected a key such as status or tags.env, found {found}")
            if token.kind == _BACKTICK and not token.text:
                raise self._fail(start, "a backtick key is empty")
            segments.append((token.text, token.kind == _BACKTICK))
            following = self._peek()
            if following is None or following.kind != _PUNCT or following.text != ".":
                return segments
            self._take()

    def _parse_comparator(self, start: int) -> str:
        token = self._take()
        if token is None:
            raise self._fail(start, "a comparator and a value are missing")
        if token.kind == _OPERATOR:
            return token.text
        if self._is_word(token, "IN", "LIKE", "ILIKE", "RLIKE"):
            return token.text.upper()
        if self._is_word(token, "NOT"):
            following = self._take()
            if self._is_word(following, "IN"):
                return "NOT IN"
            raise self._fail(start, "NOT is only valid in NOT IN", _COMPARATOR_HINT)
        raise self._fail(start, f"{token.text!r} is not a comparator", _COMPARATOR_HINT)

    def _parse_value(self, start: int, comparator: str) -> FilterValue:
        token = self._take()
        if comparator in _LIST_COMPARATORS:
            if token is None or token.text != "(" or token.kind != _PUNCT:
                raise self._fail(start, f"{comparator} needs a list in parentheses, such as ('a', 'b')")
            items: list[str] = []
            while True:
                item = self._take()
                if item is None or item.kind != _STRING:
                    raise self._fail(start, f"the {comparator} list must hold quoted strings, such as ('a', 'b')")
                items.append(item.text)
                separator = self._take()
                if separator is not None and separator.kind == _PUNCT and separator.text == ")":
                    return tuple(items)
                if separator is None or separator.kind != _PUNCT or separator.text != ",":
                    raise self._fail(start, f"the {comparator} list must be quoted strings separated by commas")
        if token is None:
            raise self._fail(start, "the value is missing")
        if token.kind == _STRING:
            return token.text
        if token.kind == _NUMBER:
            number = float(token.text)
            return int(number) if number.is_integer() and re.fullmatch(r"[-+]?\d+", token.text) else number
        if token.kind == _WORD:
            raise self._fail(start, f"the value {token.text!r} must be quoted, as in '{token.text}'")
        raise self._fail(start, f"expected a value after {comparator}, found {token.text!r}")

    def _resolve_key(self, start: int, segments: list[tuple[str, bool]]) -> tuple[str, str]:
        head, head_quoted = segments[0]
        if len(segments) == 1:
            return ATTRIBUTE, head
        entity = None if head_quoted else _ENTITY_ALIASES.get(head.lower())
        if entity is None:
            raise self._fail(
                start,
                f"unknown entity {head!r}",
                "Valid entities: attributes (also attribute, trace), tags (tag), metadata "
                "(request_metadata), span, feedback, expectation. A key with dots goes in "
                "backticks, as in tags.`mlflow.traceName`.",
            )
        rest = [text for text, _ in segments[1:]]
        if entity == SPAN:
            return SPAN, _span_key(self, start, segments[1:])
        return entity, ".".join(rest)


_COMPARATOR_HINT = "Valid comparators: =, !=, >, >=, <, <=, IN, NOT IN, LIKE, ILIKE, RLIKE."


def _span_key(parser: _Parser, start: int, segments: list[tuple[str, bool]]) -> str:
    head, quoted = segments[0]
    name = head if quoted else head.lower()
    if name == "attributes" and not quoted:
        if len(segments) < 2:
            raise parser._fail(start, "span.attributes needs an attribute key", _SPAN_HINT)
        return "attributes." + ".".join(text for text, _ in segments[1:])
    if name in _SPAN_KEYS and len(segments) == 1:
        return name
    written = ".".join(text for text, _ in segments)
    raise parser._fail(start, f"unknown span key {written!r}", _SPAN_HINT)


_SPAN_HINT = (
    "Valid span keys: span.name, span.type, span.status, span.content and "
    "span.attributes.<key> (backticks for keys with dots, as in span.attributes.`mlflow.spanType`)."
)


def _validate(clause: Clause) -> None:
    """Check the comparator and the value type against what the clause's key allows."""
    entity, key, comparator, value = clause.entity, clause.key, clause.comparator, clause.value
    if entity == ATTRIBUTE:
        lowered = key.lower()
        if lowered in _NUMERIC_ATTRIBUTES:
            _require(clause, comparator in _NUMERIC_COMPARATORS, _NUMERIC_COMPARATORS, f"attribute {key}")
            if not isinstance(value, (int, float)):
                raise FilterError(
                    f"invalid filter clause {clause.text!r}: {key} is a number of epoch milliseconds "
                    f"(or milliseconds of duration); write it unquoted, as in {key} > 1700000000000."
                )
            return
        if lowered not in _STRING_ATTRIBUTES:
            valid = ", ".join(sorted(set(_STRING_ATTRIBUTES) | set(_NUMERIC_ATTRIBUTES)))
            raise FilterError(
                f"invalid filter clause {clause.text!r}: unknown attribute {key!r}. Valid attributes: {valid}. "
                "Other keys need an entity prefix: tags., metadata., span., feedback. or expectation."
            )
        _require(clause, comparator in _STRING_ATTRIBUTES[lowered], _STRING_ATTRIBUTES[lowered], f"attribute {key}")
    elif entity in (TAG, METADATA):
        label = "tags" if entity == TAG else "metadata"
        _require(clause, comparator in _STRING_COMPARATORS, _STRING_COMPARATORS, label)
    elif entity == SPAN:
        allowed = _SPAN_KEYS.get(key, _STRING_AND_LIST_COMPARATORS)
        _require(clause, comparator in allowed, allowed, f"span.{key}")
    else:
        _require(clause, comparator in _STRING_AND_LIST_COMPARATORS, _STRING_AND_LIST_COMPARATORS, f"{entity} values")
    if isinstance(value, (int, float)):
        raise FilterError(
            f"invalid filter clause {clause.text!r}: the value must be a quoted string, as in '{value}'; "
            "only timestamp, execution_time and end_time take bare numbers."
        )
    if comparator == "RLIKE":
        try:
            re.compile(value)  # type: ignore[arg-type]
        except re.error as exc:
            raise FilterError(f"invalid filter clause {clause.text!r}: invalid regular expression ({exc}).") from None


def _require(clause: Clause, ok: bool, allowed: tuple[str, ...], subject: str) -> None:
    if not ok:
        raise FilterError(
            f"invalid filter clause {clause.text!r}: comparator {clause.comparator} is not valid for "
            f"{subject}; use one of {', '.join(allowed)}."
        )


# --- compilation --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledFilter:
    """A WHERE expression over ``traces AS t`` and its parameters, in order."""

    sql: str
    params: tuple[object, ...]


_STATUS_SPELLINGS = {"UNSPECIFIED": "STATE_UNSPECIFIED", "UNSET": "STATE_UNSPECIFIED"}


def compile_filter(filter_string: str | None) -> CompiledFilter:
    """Parse ``filter_string`` and compile it; no filter compiles to ``1``."""
    return compile_clauses(parse_filter(filter_string))


def compile_clauses(clauses: list[Clause]) -> CompiledFilter:
    if not clauses:
        return CompiledFilter("1", ())
    parts: list[str] = []
    params: list[object] = []
    for clause in clauses:
        parts.append(_compile_clause(clause, params))
    return CompiledFilter(" AND ".join(f"({part})" for part in parts), tuple(params))


def _compile_clause(clause: Clause, params: list[object]) -> str:
    entity = clause.entity
    if entity == ATTRIBUTE:
        return _compile_attribute(clause, params)
    if entity in (TAG, METADATA):
        table = "trace_tags" if entity == TAG else "trace_metadata"
        params.append(clause.key)
        condition = _compare("g.value", clause.comparator, clause.value, params)
        return f"EXISTS (SELECT 1 FROM {table} g WHERE g.trace_id = t.trace_id AND g.key = ? AND {condition})"
    if entity == SPAN:
        return _compile_span(clause, params)
    params.append(entity)
    params.append(clause.key)
    condition = _compare("a.value_text", clause.comparator, clause.value, params)
    return (
        "EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id AND a.kind = ? "
        f"AND a.name = ? AND a.valid = 1 AND {condition})"
    )


def _compile_attribute(clause: Clause, params: list[object]) -> str:
    key = clause.key.lower()
    comparator, value = clause.comparator, clause.value
    if key in _NUMERIC_ATTRIBUTES:
        return _compare(_NUMERIC_ATTRIBUTES[key], comparator, value, params)
    if key in ("request_id", "trace_id"):
        return _compare("t.trace_id", comparator, value, params)
    if key == "client_request_id":
        return _compare("t.client_request_id", comparator, value, params)
    if key == "experiment_id":
        return _compare("t.experiment_id", comparator, value, params)
    if key in ("status", "state"):
        if comparator in _EQUALITY + _LIST_COMPARATORS:
            value = _normalize_status(value)
        return _compare("t.state", comparator, value, params)
    if key == "name":
        params.append(TRACE_NAME_TAG)
        condition = _compare("g.value", comparator, value, params)
        return f"EXISTS (SELECT 1 FROM trace_tags g WHERE g.trace_id = t.trace_id AND g.key = ? AND {condition})"
    if key == "run_id":
        return _compile_run_id(comparator, value, params)
    if key == "prompt":
        params.append(LINKED_PROMPTS_TAG)
        params.append(value)
        return (
            "EXISTS (SELECT 1 FROM trace_tags g, json_each(CASE WHEN json_valid(g.value) THEN g.value "
            "ELSE '[]' END) p WHERE g.trace_id = t.trace_id AND g.key = ? AND p.type = 'object' AND "
            "(CASE WHEN p.type = 'object' THEN json_extract(p.value, '$.name') || '/' || "
            "json_extract(p.value, '$.version') END) = ?)"
        )
    # text: any span's content.
    condition = _compare("s.content", comparator, value, params)
    return f"EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {condition})"


def _compile_run_id(comparator: str, value: FilterValue, params: list[object]) -> str:
    """Match the run that produced the trace (metadata mlflow.sourceRun) or any run it is linked to."""
    negated = comparator in ("!=", "NOT IN")
    positive = {"!=": "=", "NOT IN": "IN"}.get(comparator, comparator)
    own = _compare("t.run_id", positive, value, params)
    linked = _compare("r.run_id", positive, value, params)
    expression = (
        f"IFNULL({own}, 0) OR EXISTS (SELECT 1 FROM trace_runs r WHERE r.trace_id = t.trace_id AND {linked})"
    )
    return f"NOT ({expression})" if negated else expression


def _compile_span(clause: Clause, params: list[object]) -> str:
    key, comparator, value = clause.key, clause.comparator, clause.value
    if key.startswith("attributes."):
        params.append(key[len("attributes."):])
        condition = _compare("tui_eval_attribute_text(a.value)", comparator, value, params)
        return (
            "EXISTS (SELECT 1 FROM spans s, json_each(s.content, '$.attributes') a "
            f"WHERE s.trace_id = t.trace_id AND a.key = ? AND {condition})"
        )
    column = {"name": "s.name", "type": "s.type", "status": "s.status", "content": "s.content"}[key]
    if key == "status" and comparator in _EQUALITY + _LIST_COMPARATORS:
        value = _normalize_span_status(value)
    condition = _compare(column, comparator, value, params)
    return f"EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND {condition})"


def _compare(expression: str, comparator: str, value: FilterValue, params: list[object]) -> str:
    """Return ``expression <comparator> ?`` in SQLite terms, appending the parameters."""
    if comparator in _LIST_COMPARATORS:
        assert isinstance(value, tuple)
        params.extend(value)
        placeholders = ", ".join("?" for _ in value)
        return f"{expression} {comparator} ({placeholders})"
    if comparator == "LIKE":
        # NOTE: SQLite's GLOB and LIKE stop at a NUL character, so a pattern cannot match past
        # a NUL in a name, tag or metadata value. Span content is JSON, where NUL is escaped.
        params.append(like_to_glob(str(value)))
        return f"{expression} GLOB ?"
    if comparator == "ILIKE":
        params.append(str(value).casefold())
        return f"tui_eval_casefold({expression}) LIKE ?"
    if comparator == "RLIKE":
        params.append(value)
        return f"{expression} REGEXP ?"
    params.append(value)
    return f"{expression} {comparator} ?"


def like_to_glob(pattern: str) -> str:
    """Translate a SQL LIKE pattern into an equivalent, case-sensitive GLOB pattern.

    ``%`` becomes ``*`` and ``_`` becomes ``?``; the characters GLOB treats as special
    (``*``, ``?``, ``[``) are wrapped in brackets so they match themselves.
    """
    out: list[str] = []
    for char in pattern:
        if char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _normalize_status(value: FilterValue) -> FilterValue:
    if isinstance(value, tuple):
        return tuple(_STATUS_SPELLINGS.get(item.upper(), item.upper()) for item in value)
    text = str(value).upper()
    return _STATUS_SPELLINGS.get(text, text)


def _normalize_span_status(value: FilterValue) -> FilterValue:
    def one(item: str) -> str:
        text = item.upper()
        return text[len("STATUS_CODE_"):] if text.startswith("STATUS_CODE_") else text

    if isinstance(value, tuple):
        return tuple(one(item) for item in value)
    return one(str(value))


# --- order_by -----------------------------------------------------------------------------

_ORDER_COLUMNS = {
    "timestamp": "t.request_time",
    "timestamp_ms": "t.request_time",
    "request_time": "t.request_time",
    "execution_time": "t.execution_duration",
    "execution_time_ms": "t.execution_duration",
    "execution_duration": "t.execution_duration",
    "end_time": "t.end_time",
    "end_time_ms": "t.end_time",
    "status": "t.state",
    "state": "t.state",
    "request_id": "t.trace_id",
    "trace_id": "t.trace_id",
    "name": "t.name",
    "run_id": "t.run_id",
    "experiment_id": "t.experiment_id",
    "client_request_id": "t.client_request_id",
}
_ORDER_PREFIXES = ("attribute.", "attributes.", "trace.")
_ORDER_PATTERN = re.compile(r"^\s*(?P<key>[A-Za-z_.`]+?)\s*(?:\s(?P<direction>ASC|DESC))?\s*$", re.IGNORECASE)


def compile_order_by(order_by: list[str] | tuple[str, ...] | str | None) -> str:
    """Compile MLflow ``order_by`` items (``"timestamp_ms DESC"``) to an ORDER BY list.

    The default is newest first. Ties are always broken by request time (newest first), then
    by trace id (ascending), as MLflow does.
    """
    if isinstance(order_by, str):
        order_by = [order_by]
    terms: list[str] = []
    columns: set[str] = set()
    for item in order_by or ():
        match = _ORDER_PATTERN.match(item or "")
        key = match.group("key").replace("`", "") if match else None
        if key is not None:
            for prefix in _ORDER_PREFIXES:
                if key.lower().startswith(prefix):
                    key = key[len(prefix):]
                    break
        column = _ORDER_COLUMNS.get(key.lower()) if key else None
        if column is None:
            valid = ", ".join(sorted(_ORDER_COLUMNS))
            raise FilterError(
                f"invalid order_by item {item!r}: expected '<key> [ASC|DESC]' with key one of {valid}; "
                "for example 'timestamp_ms DESC'."
            )
        if column in columns:
            continue
        direction = (match.group("direction") or "ASC").upper()
        columns.add(column)
        terms.append(f"{column} {direction}")
    if "t.request_time" not in columns:
        terms.append("t.request_time DESC")
    if "t.trace_id" not in columns:
        terms.append("t.trace_id ASC")
    return ", ".join(terms)
