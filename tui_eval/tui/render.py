"""Pure render functions: entities and values in, rich ``Text`` (or groups of them) out.

Nothing here touches a widget or the app, so every function is tested on its own. User
text never goes through a markup parser: it is put into ``Text`` objects verbatim, after
``visible`` has replaced control characters with printable stand-ins, so an escape sequence
stored in a trace is drawn as ``␛[31m`` and never reaches the terminal.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.style import Style
from rich.text import Text

from tui_eval.entities import Span, SpanStatusCode
from tui_eval.workbench.results import (
    CELL_ERROR_CODE,
    CELL_ERROR_MESSAGE,
    CELL_RATIONALE,
    CELL_SOURCE_ID,
    CELL_SOURCE_TYPE,
    CELL_STACK_TRACE,
    CELL_VALUE,
    Cell,
    cell_comparison_key,
)

# --- control characters ---------------------------------------------------------------------

# C0 controls become the Unicode "control pictures" (U+2400 + code), so ESC shows as ␛.
# DEL has its own picture; C1 controls and the invisible formatting characters that reorder
# or hide text (bidi overrides, byte order mark, line separators) are shown as escapes.
_VISIBLE_TABLE: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
_VISIBLE_TABLE[0x7F] = "\u2421"
_VISIBLE_TABLE.update({code: f"\\x{code:02x}" for code in range(0x80, 0xA0)})
_VISIBLE_TABLE.update(
    {
        code: f"\\u{code:04x}"
        for code in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    }
)

_MULTILINE_TABLE = dict(_VISIBLE_TABLE)
del _MULTILINE_TABLE[ord("\n")]
_MULTILINE_TABLE[ord("\t")] = "    "

_ONE_LINE_TABLE = dict(_VISIBLE_TABLE)
_ONE_LINE_TABLE[ord("\n")] = " \u21b5 "
_ONE_LINE_TABLE[ord("\t")] = " "

# Matches any character that ``visible`` replaces; used to skip the translation on clean text.
_NEEDS_TRANSLATION = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069]"
)

PREVIEW_CHARS = 240
"""Characters kept in a single-line preview; longer previews end with an ellipsis."""


def visible(text: str, *, multiline: bool = False) -> str:
    """Return ``text`` with every control character replaced by a printable stand-in.

    With ``multiline`` newlines stay (``\\r\\n`` and lone ``\\r`` become ``\\n``) and tabs
    become four spaces; otherwise a newline is shown as ``␊`` like any other control.
    """
    if not _NEEDS_TRANSLATION.search(text):
        return text
    if multiline:
        return text.replace("\r\n", "\n").translate(_MULTILINE_TABLE)
    return text.translate(_VISIBLE_TABLE)


def one_line(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """Squeeze ``text`` into one visible line of at most ``limit`` characters.

    Newlines show as ``↵``, tabs as a space, other controls as their stand-ins.
    """
    if not text:
        return ""
    if len(text) > limit * 4:
        text = text[: limit * 4]
    if _NEEDS_TRANSLATION.search(text):
        text = text.replace("\r\n", "\n").translate(_ONE_LINE_TABLE)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def fit(text: Text | str, width: int, *, justify: str = "left") -> Text:
    """Cut or pad ``text`` to exactly ``width`` terminal cells, never splitting a grapheme."""
    result = text.copy() if isinstance(text, Text) else Text(text)
    result.no_wrap = True
    if width <= 0:
        return Text("")
    length = result.cell_len
    if length > width:
        result.truncate(width, overflow="ellipsis")
        length = result.cell_len
    if length < width:
        if justify == "right":
            result = Text(" " * (width - length), end="") + result
        else:
            result.pad_right(width - length)
    result.end = ""
    return result


# --- small formats ----------------------------------------------------------------------------


def format_duration_ms(ms: float | None) -> str:
    """Format a duration in milliseconds: ``850ms``, ``1.25s``, ``2m03s``, ``1h02m``."""
    if ms is None:
        return "\u2013"
    if ms < 0:
        return "?"
    if ms < 1:
        return f"{ms:.2f}ms" if ms else "0ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_time_ms(ms: int | None, *, with_seconds: bool = True) -> str:
    """Format an epoch time in milliseconds as local ``MM-DD HH:MM:SS``."""
    if not ms:
        return "\u2013"
    local = time.localtime(ms / 1000)
    return time.strftime("%m-%d %H:%M:%S" if with_seconds else "%m-%d %H:%M", local)


def format_count(number: int | None) -> str:
    """Format a count compactly: ``950``, ``12.3k``, ``4.1M``."""
    if number is None:
        return "\u2013"
    if number < 10_000:
        return str(number)
    if number < 1_000_000:
        return f"{number / 1000:.1f}k"
    return f"{number / 1_000_000:.1f}M"


def format_number(value: float) -> str:
    """Format a score compactly: integers as they are, floats with at most three decimals."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**7 else f"{value:.2e}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) >= 10**6 or abs(value) < 1e-3):
        return f"{value:.2e}"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


# --- feedback cells -------------------------------------------------------------------------


class CellKind(str, Enum):
    """The kind of value a score cell shows. Each kind has its own mark, so colour is never needed."""

    PASS = "pass"
    FAIL = "fail"
    NUMBER = "number"
    TEXT = "text"
    ERROR = "error"
    NONE = "none"
    NAN = "nan"
    MISSING = "missing"


CELL_MARKS = {
    CellKind.PASS: "\u2713",
    CellKind.FAIL: "\u2717",
    CellKind.ERROR: "err",
    CellKind.NONE: "\u2205",
    CellKind.NAN: "NaN",
    CellKind.MISSING: "\u00b7",
}

CELL_STYLES = {
    CellKind.PASS: Style(color="green", bold=True),
    CellKind.FAIL: Style(color="red", bold=True),
    CellKind.NUMBER: Style(color="cyan"),
    CellKind.TEXT: Style(),
    CellKind.ERROR: Style(color="bright_white", bgcolor="red", bold=True),
    CellKind.NONE: Style(color="magenta"),
    CellKind.NAN: Style(color="yellow"),
    CellKind.MISSING: Style(dim=True),
}

CHANGED_STYLE = Style(underline=True, bold=True, bgcolor="#3a3a00")
STALE_STYLE = Style(dim=True, italic=True)


def cell_kind(cell: Cell | None) -> CellKind:
    """Return the kind of a score cell (``classify`` without the text, for counting many cells)."""
    if cell is None:
        return CellKind.MISSING
    if cell[CELL_ERROR_CODE] is not None:
        return CellKind.ERROR
    value = cell[CELL_VALUE]
    if value is None:
        return CellKind.NONE
    if isinstance(value, bool):
        return CellKind.PASS if value else CellKind.FAIL
    if isinstance(value, (int, float)):
        return CellKind.NAN if isinstance(value, float) and math.isnan(value) else CellKind.NUMBER
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "yes":
            return CellKind.PASS
        if lowered == "no":
            return CellKind.FAIL
    return CellKind.TEXT


def classify(cell: Cell | None) -> tuple[CellKind, str]:
    """Return the kind of a score cell and its short text (a mark or the value)."""
    kind = cell_kind(cell)
    if kind is CellKind.NUMBER:
        return kind, format_number(cell[CELL_VALUE])  # type: ignore[index]
    if kind is CellKind.TEXT:
        value = cell[CELL_VALUE]  # type: ignore[index]
        if isinstance(value, str):
            return kind, one_line(value, 80)
        return kind, one_line(json.dumps(value, ensure_ascii=False, default=str), 80)
    if kind in (CellKind.PASS, CellKind.FAIL) and isinstance(cell[CELL_VALUE], str):  # type: ignore[index]
        # A yes/no value keeps its word after the mark.
        return kind, CELL_MARKS[kind] + " " + cell[CELL_VALUE].strip()  # type: ignore[index]
    return kind, CELL_MARKS[kind]


def cell_number(cell: Cell | None) -> float | None:
    """The number a cell compares and sorts as: pass/fail as 1/0, numbers as they are, else None."""
    kind = cell_kind(cell)
    if kind is CellKind.PASS:
        return 1.0
    if kind is CellKind.FAIL:
        return 0.0
    if kind is CellKind.NUMBER:
        return float(cell[CELL_VALUE])  # type: ignore[index]
    return None


_MARK_ORDER = {CellKind.NAN: 2, CellKind.NONE: 3, CellKind.ERROR: 4, CellKind.MISSING: 5}


def cell_sort_key(cell: Cell | None) -> tuple[int, float, str]:
    """Sort key for a score column: numbers and pass/fail by value, then text, then the marks."""
    kind, text = classify(cell)
    number = cell_number(cell)
    if number is not None:
        return (0, number, "")
    if kind is CellKind.TEXT:
        return (1, 0.0, text.lower())
    return (_MARK_ORDER[kind], 0.0, "")


def score_cell(cell: Cell | None, width: int, *, changed: bool = False, stale: bool = False) -> Text:
    """Render one compact score cell of exactly ``width`` cells."""
    kind, text = classify(cell)
    style = CELL_STYLES[kind]
    if changed:
        style = style + CHANGED_STYLE
    if stale:
        style = style + STALE_STYLE
    justify = "right" if kind is CellKind.NUMBER else "left"
    return fit(Text(text, style=style), width, justify=justify)


def cell_value_text(cell: Cell | None) -> Text:
    """Render a cell's full value, on several lines if needed (used in the scores pane)."""
    kind, text = classify(cell)
    if cell is None or kind in (CellKind.MISSING, CellKind.ERROR, CellKind.NONE, CellKind.NAN):
        label = {
            CellKind.MISSING: "\u00b7 not scored",
            CellKind.ERROR: "err  error",
            CellKind.NONE: "\u2205 None",
            CellKind.NAN: "NaN",
        }[kind]
        return Text(label, style=CELL_STYLES[kind])
    value = cell[CELL_VALUE]
    if kind is CellKind.TEXT:
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)
        return Text(visible(shown, multiline=True), style=CELL_STYLES[kind])
    if kind in (CellKind.PASS, CellKind.FAIL) and isinstance(value, bool):
        return Text(f"{text} {value}", style=CELL_STYLES[kind])
    return Text(text, style=CELL_STYLES[kind])


def same_outcome(first: Cell | None, second: Cell | None) -> bool:
    """Whether two cells show the same result (value, rationale and error; NaN equals NaN)."""
    if first is None or second is None:
        return first is second
    return cell_comparison_key(first) == cell_comparison_key(second) and type(first[CELL_VALUE]) is type(
        second[CELL_VALUE]
    )


LABEL_STYLE = Style(bold=True)
DIM = Style(dim=True)


def render_score(
    cell: Cell | None,
    *,
    name: str,
    previous: Cell | None = None,
    has_previous: bool = False,
    changed: bool = False,
) -> Group:
    """Render one feedback for the scores pane: value, rationale, error, source and previous value."""
    lines: list[RenderableType] = []
    title = Text(visible(name), style=LABEL_STYLE)
    if changed:
        title.append("  changed", style=CHANGED_STYLE)
    lines.append(title)
    lines.append(Text.assemble(("  value      ", DIM), cell_value_text(cell)))
    if has_previous:
        lines.append(Text.assemble(("  previous   ", DIM), cell_value_text(previous)))
    if cell is not None:
        rationale = cell[CELL_RATIONALE]
        if rationale:
            lines.append(Text.assemble(("  rationale  ", DIM), visible(str(rationale), multiline=True)))
        error_code = cell[CELL_ERROR_CODE]
        if error_code is not None:
            lines.append(
                Text.assemble(
                    ("  error      ", DIM),
                    (visible(str(error_code)), CELL_STYLES[CellKind.ERROR]),
                    " ",
                    visible(str(cell[CELL_ERROR_MESSAGE] or ""), multiline=True),
                )
            )
            stack_trace = cell[CELL_STACK_TRACE]
            if stack_trace:
                lines.append(Text(indent(visible(str(stack_trace).rstrip(), multiline=True), 4), style=DIM))
        lines.append(
            Text.assemble(
                ("  source     ", DIM), visible(f"{cell[CELL_SOURCE_TYPE]}: {cell[CELL_SOURCE_ID]}")
            )
        )
    return Group(*lines)


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.split("\n"))


# --- spans ------------------------------------------------------------------------------------

SPAN_TYPE_STYLES = {
    "LLM": Style(color="magenta"),
    "CHAT_MODEL": Style(color="magenta"),
    "TOOL": Style(color="yellow"),
    "RETRIEVER": Style(color="cyan"),
    "AGENT": Style(color="blue"),
    "CHAIN": Style(color="blue"),
}
ERROR_STYLE = Style(color="red", bold=True)
BAR_STYLE = Style(color="blue")
BAR_ERROR_STYLE = Style(color="red")

_EIGHTHS = " \u258f\u258e\u258d\u258c\u258b\u258a\u2589\u2588"


def duration_bar(start_ns: int, end_ns: int | None, trace_start_ns: int, trace_end_ns: int, width: int) -> str:
    """Draw a span's extent against its trace in ``width`` cells with eighth-cell precision.

    The result is exactly ``width`` characters long: spaces before the span, block
    characters over it. A span shorter than an eighth of a cell still gets a thin mark.
    """
    if width <= 0:
        return ""
    total = max(trace_end_ns - trace_start_ns, 1)
    end_ns = end_ns if end_ns is not None else trace_end_ns
    start = min(max((start_ns - trace_start_ns) / total, 0.0), 1.0) * width
    stop = min(max((end_ns - trace_start_ns) / total, 0.0), 1.0) * width
    first_cell = min(int(start), width - 1)
    eighths = max(round((stop - first_cell) * 8), 1)
    full, remainder = divmod(eighths, 8)
    full = min(full, width - first_cell)
    bar = "\u2588" * full
    if remainder and first_cell + full < width:
        bar += _EIGHTHS[remainder]
    return (" " * first_cell + bar).ljust(width)[:width]


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One line of the span tree: the span, its depth and the tree guide drawn before it."""

    span: Span
    depth: int
    guide: str


def span_rows(spans: Sequence[Span]) -> list[SpanRow]:
    """Flatten spans into tree order (children by start time) with guide lines.

    Spans whose parent is missing are shown as roots, so no span is ever dropped.
    """
    by_id = {span.span_id: span for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in by_id and span.parent_id != span.span_id else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda item: item.start_time_ns)
    rows: list[SpanRow] = []
    seen: set[int] = set()

    def walk(parent: str | None, prefix: str, depth: int) -> None:
        group = children.get(parent, [])
        for position, span in enumerate(group):
            if id(span) in seen:
                continue
            seen.add(id(span))
            last = position == len(group) - 1
            guide = "" if depth == 0 else prefix + ("\u2514\u2500 " if last else "\u251c\u2500 ")
            rows.append(SpanRow(span, depth, guide))
            child_prefix = "" if depth == 0 else prefix + ("   " if last else "\u2502  ")
            walk(span.span_id, child_prefix, depth + 1)

    walk(None, "", 0)
    return rows


def span_label(row: SpanRow, width: int, trace_start_ns: int, trace_end_ns: int, bar_width: int) -> Text:
    """Render one span tree line of exactly ``width`` cells: guide, name, type, duration, bar."""
    span = row.span
    failed = span.status.status_code == SpanStatusCode.ERROR
    span_type = span.span_type or ""
    duration = span.duration_ns
    right = Text.assemble(
        (format_duration_ms(duration / 1e6 if duration is not None else None).rjust(8), DIM),
        " ",
    )
    if bar_width > 0:
        bar = duration_bar(span.start_time_ns, span.end_time_ns, trace_start_ns, trace_end_ns, bar_width)
        right.append(bar, style=BAR_ERROR_STYLE if failed else BAR_STYLE)
    left = Text(row.guide, style=DIM, end="")
    left.append(visible(span.name or "(unnamed)"), style=ERROR_STYLE if failed else Style())
    if span_type:
        left.append(" ")
        left.append(visible(str(span_type)), style=SPAN_TYPE_STYLES.get(str(span_type), DIM))
    if failed:
        left.append(" \u2717", style=ERROR_STYLE)
    left_width = max(width - right.cell_len, 0)
    return Text.assemble(fit(left, left_width), right)


# --- payloads ---------------------------------------------------------------------------------

PAYLOAD_LIMIT = 4_000
"""Characters of a payload shown before it is cut; the full payload is one key away."""

_JSON_STYLES = {
    "json.key": Style(color="blue", bold=True),
    "json.str": Style(color="green"),
    "json.number": Style(color="cyan"),
    "json.bool_true": Style(color="bright_green", italic=True),
    "json.bool_false": Style(color="bright_red", italic=True),
    "json.null": Style(color="magenta", italic=True),
    "json.brace": Style(bold=True),
}
_JSON_HIGHLIGHTER = JSONHighlighter()

ROLE_STYLES = {
    "system": Style(color="yellow", bold=True),
    "user": Style(color="cyan", bold=True),
    "assistant": Style(color="green", bold=True),
    "tool": Style(color="magenta", bold=True),
}


@dataclass(frozen=True, slots=True)
class Payload:
    """A rendered payload: what to draw and how many characters were cut (0 when whole)."""

    renderable: RenderableType
    cut_chars: int = 0


def _cut(text: str, limit: int | None) -> tuple[str, int]:
    if limit is None or len(text) <= limit:
        return text, 0
    cut_at = text.rfind("\n", 0, limit)
    if cut_at < limit // 2:
        cut_at = limit
    return text[:cut_at], len(text) - cut_at


def _cut_notice(cut_chars: int, key: str) -> Text:
    return Text(f"\u2026 {cut_chars:,} more characters cut; press {key} to show all", style=Style(italic=True, dim=True))


def render_json(value: Any, limit: int | None = PAYLOAD_LIMIT) -> tuple[Text, int]:
    """Render a JSON-compatible value as indented, highlighted JSON; return it and the cut size."""
    dumped = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    dumped, cut_chars = _cut(dumped, limit)
    text = Text(visible(dumped, multiline=True), overflow="fold")
    _JSON_HIGHLIGHTER.highlight(text)
    text.spans[:] = [
        span._replace(style=_JSON_STYLES.get(str(span.style), Style())) for span in text.spans
    ]
    return text, cut_chars


def render_text(value: str, limit: int | None = PAYLOAD_LIMIT) -> tuple[Text, int]:
    """Render free text wrapped at the pane width; return it and the cut size."""
    shown, cut_chars = _cut(value, limit)
    return Text(visible(shown, multiline=True), overflow="fold"), cut_chars


def chat_messages(value: Any) -> list[Mapping[str, Any]] | None:
    """Find chat messages in a payload: a message list, ``{"messages": [...]}`` or an OpenAI response."""
    if isinstance(value, Mapping):
        if isinstance(value.get("messages"), list):
            value = value["messages"]
        elif isinstance(value.get("choices"), list):
            messages = [
                choice.get("message") or choice.get("delta")
                for choice in value["choices"]
                if isinstance(choice, Mapping)
            ]
            value = [message for message in messages if isinstance(message, Mapping)]
        else:
            return None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, Mapping) and isinstance(item.get("role"), str) for item in value):
        return value
    return None


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                parts.append(json.dumps(part, ensure_ascii=False, default=str))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, default=str)


def render_chat(messages: Sequence[Mapping[str, Any]], limit: int | None = PAYLOAD_LIMIT) -> tuple[Group, int]:
    """Render chat messages as a conversation: a role line, then the wrapped content."""
    parts: list[RenderableType] = []
    budget = limit
    cut_total = 0
    for message in messages:
        role = str(message.get("role"))
        header = Text("\u258c ", style=ROLE_STYLES.get(role, LABEL_STYLE))
        header.append(visible(role), style=ROLE_STYLES.get(role, LABEL_STYLE))
        if isinstance(message.get("name"), str):
            header.append(f" ({visible(message['name'])})", style=DIM)
        parts.append(header)
        body = _content_text(message.get("content"))
        extras = {key: message[key] for key in ("tool_calls", "function_call", "tool_call_id") if message.get(key)}
        if extras:
            body = (body + "\n" if body else "") + json.dumps(extras, ensure_ascii=False, indent=2, default=str)
        if budget is not None and budget <= 0:
            cut_total += len(body)
            continue
        body, cut_chars = _cut(body, budget)
        cut_total += cut_chars
        if budget is not None:
            budget -= len(body)
        parts.append(Text(indent(visible(body, multiline=True), 2), overflow="fold"))
    return Group(*parts), cut_total


def render_payload(value: Any, *, show_all: bool = False, limit: int = PAYLOAD_LIMIT, key: str = "a") -> Payload:
    """Render a span input or output: a conversation, highlighted JSON or wrapped text.

    Output longer than ``limit`` characters is cut unless ``show_all``; the notice names ``key``.
    """
    effective = None if show_all else limit
    messages = chat_messages(value)
    if messages is not None:
        rendered, cut_chars = render_chat(messages, effective)
    elif isinstance(value, str):
        rendered, cut_chars = render_text(value, effective)
    elif value is None:
        return Payload(Text("null", style=_JSON_STYLES["json.null"]))
    else:
        rendered, cut_chars = render_json(value, effective)
    if cut_chars:
        rendered = Group(rendered, _cut_notice(cut_chars, key))
    return Payload(rendered, cut_chars)


_HIDDEN_ATTRIBUTES = frozenset(
    {"mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.traceRequestId", "mlflow.spanType"}
)


def section_title(title: str) -> Text:
    return Text(title, style=Style(bold=True, underline=True))


def render_span_detail(span: Span, *, trace_start_ns: int, show_all: bool = False, key: str = "a") -> Payload:
    """Render the selected span: header, inputs, outputs, attributes and events."""
    parts: list[RenderableType] = []
    cut_total = 0
    status = span.status
    failed = status.status_code == SpanStatusCode.ERROR
    header = Text(visible(span.name or "(unnamed)"), style=Style(bold=True))
    if span.span_type:
        header.append("  ")
        header.append(visible(str(span.span_type)), style=SPAN_TYPE_STYLES.get(str(span.span_type), DIM))
    header.append("  ")
    header.append(status.status_code.value, style=ERROR_STYLE if failed else Style(color="green"))
    parts.append(header)
    duration = span.duration_ns
    offset_ms = (span.start_time_ns - trace_start_ns) / 1e6
    parts.append(
        Text(
            f"starts +{format_duration_ms(offset_ms)}  lasts "
            f"{format_duration_ms(duration / 1e6 if duration is not None else None)}  "
            f"span {visible(span.span_id)}",
            style=DIM,
        )
    )
    if failed and status.description:
        parts.append(Text(visible(status.description, multiline=True), style=ERROR_STYLE))
    for title, value in (("Inputs", span.inputs), ("Outputs", span.outputs)):
        parts.append(Text(""))
        parts.append(section_title(title))
        payload = render_payload(value, show_all=show_all, key=key)
        cut_total += payload.cut_chars
        parts.append(payload.renderable)
    attributes = {k: v for k, v in span.attributes.items() if k not in _HIDDEN_ATTRIBUTES}
    if attributes:
        parts.append(Text(""))
        parts.append(section_title("Attributes"))
        payload = render_payload(attributes, show_all=show_all, key=key)
        cut_total += payload.cut_chars
        parts.append(payload.renderable)
    if span.events:
        parts.append(Text(""))
        parts.append(section_title("Events"))
        for event in span.events:
            line = Text.assemble(
                (f"+{format_duration_ms((event.timestamp - trace_start_ns) / 1e6)} ", DIM),
                (visible(event.name), ERROR_STYLE if event.name == "exception" else LABEL_STYLE),
            )
            parts.append(line)
            attributes = dict(event.attributes)
            stack = attributes.pop("exception.stacktrace", None)
            if attributes:
                payload = render_payload(attributes, show_all=show_all, key=key)
                cut_total += payload.cut_chars
                parts.append(payload.renderable)
            if isinstance(stack, str) and stack:
                shown, cut_chars = render_text(stack.rstrip(), None if show_all else PAYLOAD_LIMIT)
                cut_total += cut_chars
                shown.stylize(DIM)
                parts.append(shown)
                if cut_chars:
                    parts.append(_cut_notice(cut_chars, key))
    return Payload(Group(*parts), cut_total)


# --- summary ----------------------------------------------------------------------------------

_SPARK = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def sparkline(counts: Sequence[int]) -> str:
    """Draw bucket counts as one line of block characters (empty buckets as a low dot)."""
    peak = max(counts, default=0)
    if peak <= 0:
        return "\u00b7" * len(counts)
    return "".join(
        "\u00b7" if count == 0 else _SPARK[min(int(count / peak * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)]
        for count in counts
    )


def format_delta(current: float | None, previous: float | None) -> Text:
    """Render the change of an aggregate since the previous generation: ``▲0.12``, ``▼0.05``, ``=``."""
    if current is None or previous is None:
        return Text("")
    delta = current - previous
    if abs(delta) < 1e-12:
        return Text("=", style=DIM)
    arrow, style = ("\u25b2", Style(color="green")) if delta > 0 else ("\u25bc", Style(color="red"))
    return Text(f"{arrow}{format_number(abs(delta))}", style=style)


def render_error_report(path: str | None, line: int | None, message: str, traceback_text: str | None) -> Group:
    """Render a failed reload: where (file and line), what, and the traceback."""
    parts: list[RenderableType] = []
    location = visible(path or "(unknown file)")
    if line:
        location += f":{line}"
    parts.append(Text.assemble(("Reload failed  ", ERROR_STYLE), (location, Style(bold=True, underline=True))))
    parts.append(Text(visible(message, multiline=True), style=Style(bold=True)))
    parts.append(Text("The last good scores stay on screen, marked stale. Fix the file and save.", style=DIM))
    if traceback_text:
        parts.append(Text(""))
        parts.append(Text(visible(traceback_text.rstrip(), multiline=True), style=DIM))
    return Group(*parts)


def join_names(names: Iterable[str], limit: int = 3) -> str:
    """Join names for a status line, ending in ``+N`` when there are more than ``limit``."""
    names = list(names)
    shown = ", ".join(visible(name) for name in names[:limit])
    if len(names) > limit:
        shown += f" +{len(names) - limit}"
    return shown


def display_key_hint(key: str) -> str:
    """Write a Textual key name as a user types it (``question_mark`` as ``?``)."""
    return {"question_mark": "?", "slash": "/", "colon": ":", "escape": "Esc", "enter": "Enter"}.get(key, key)


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.1f}%"


def _maybe_number(value: float | None) -> str:
    return "\u2013" if value is None else format_number(value)


def render_summary(
    current: Mapping[str, Any],
    previous: Mapping[str, Any],
    *,
    rows_changed: int,
    total_rows: int,
    generation: int,
    metrics: Mapping[str, float] | None = None,
) -> Group:
    """Render the summary pane: one block per scorer (see ``ScorerStats``), then the changed rows.

    Each block shows the pass rate (bools and yes/no), the mean, min and max of the values
    that count as numbers, a small histogram, the counts left out of the aggregates and the
    change of pass rate and mean since the previous generation.
    """
    parts: list[RenderableType] = []
    heading = Text("Summary", style=Style(bold=True))
    if generation:
        heading.append(f"  generation {generation}", style=DIM)
    parts.append(heading)
    changed_line = Text.assemble(
        ("rows changed in the last generation: ", DIM), (f"{rows_changed:,}", Style(bold=True)), (f" of {total_rows:,}", DIM)
    )
    parts.append(changed_line)
    if not current:
        parts.append(Text("No scores yet. Pass --scorers FILE to score the traces.", style=Style(dim=True, italic=True)))
    for name, stats in current.items():
        before = previous.get(name)
        parts.append(Text(""))
        title = Text(visible(name), style=LABEL_STYLE)
        if before is None or not before.count:
            title.append("  new", style=Style(color="cyan"))
        parts.append(title)
        line = Text("  ")
        if stats.passed + stats.failed:
            line.append("pass ", style=DIM)
            line.append(_percent(stats.pass_rate), style=Style(bold=True))
            judged = f"{stats.passed}/{stats.passed + stats.failed}"
            # Errors count as failures for the `fail` filter but stay out of the rate, so the line counts them.
            left_out = f", {stats.errors} err not counted" if stats.errors else ""
            line.append(f" ({judged}{left_out}) ", style=DIM)
            if before is not None:
                line.append_text(format_delta(stats.pass_rate, before.pass_rate))
            line.append("  ")
        line.append("mean ", style=DIM)
        line.append(_maybe_number(stats.mean), style=Style(bold=True))
        line.append(" ")
        if before is not None:
            line.append_text(format_delta(stats.mean, before.mean))
        parts.append(line)
        # Pass/fail columns already show their split in the pass rate.
        histogram = stats.buckets if stats.scored > stats.passed + stats.failed else []
        if histogram:
            parts.append(
                Text.assemble(
                    ("  ", DIM),
                    (_maybe_number(stats.minimum), DIM),
                    " ",
                    (sparkline(histogram), BAR_STYLE),
                    " ",
                    (_maybe_number(stats.maximum), DIM),
                )
            )
        counts = Text("  ")
        for label, number, style in (
            ("err", stats.errors, CELL_STYLES[CellKind.ERROR]),
            ("None", stats.nones, CELL_STYLES[CellKind.NONE]),
            ("NaN", stats.nans, CELL_STYLES[CellKind.NAN]),
        ):
            counts.append(f"{label} ", style=DIM)
            counts.append(str(number), style=style if number else DIM)
            counts.append("  ")
        if stats.texts:
            counts.append(f"text {stats.texts}  ", style=DIM)
        counts.append("changed ", style=DIM)
        counts.append(str(stats.changed), style=CHANGED_STYLE if stats.changed else DIM)
        parts.append(counts)
    vanished = [name for name in previous if name not in current and previous[name].count]
    for name in vanished:
        parts.append(Text(""))
        parts.append(Text.assemble((visible(name), LABEL_STYLE), ("  gone in this generation", Style(color="red"))))
    extra = {key: value for key, value in (metrics or {}).items() if not key.endswith("/mean")}
    if extra:
        parts.append(Text(""))
        parts.append(Text("Scorer aggregations", style=LABEL_STYLE))
        for key, value in extra.items():
            parts.append(Text.assemble(("  ", DIM), (visible(key), DIM), " ", format_number(value)))
    return Group(*parts)
