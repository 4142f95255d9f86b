"""A small deterministic tokenizer for the local server's token counts.

A token is a run of word characters or a single other non-space character, so
"Can't log in!" has six tokens: ``Can`` ``'`` ``t`` ``log`` ``in`` ``!``. The counts are
not OpenAI's, but they are stable and they add up: the server reports
``prompt_tokens + completion_tokens == total_tokens`` on every response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")

# Framing tokens each chat message costs on top of its text (role marker and separators).
MESSAGE_OVERHEAD_TOKENS = 3
# Tokens that prime the assistant's reply after the last message.
REPLY_PRIMER_TOKENS = 3


def tokenize(text: str) -> list[str]:
    """Split text into tokens."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """Return the number of tokens in text."""
    return sum(1 for _ in _TOKEN.finditer(text))


def truncate_to_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut text after its first max_tokens tokens; return the text and whether it was cut."""
    if max_tokens < 0:
        max_tokens = 0
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == max_tokens:
            return text[: match.start()].rstrip(), True
    return text, False


def stream_pieces(text: str) -> list[str]:
    """Split text into the deltas a stream sends: each piece is one token plus the space before it.

    Joining the pieces gives back the text exactly.
    """
    pieces: list[str] = []
    start = 0
    for match in _TOKEN.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        if pieces:
            pieces[-1] += text[start:]
        else:
            pieces.append(text[start:])
    return pieces


def content_text(content: Any) -> str:
    """Return the text of a message's content: a string, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return str(content)


def count_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Return the prompt tokens of a chat conversation, framing included."""
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        total += count_tokens(str(message.get("role", "")))
        total += count_tokens(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_tokens(str(function.get("name", "")))
            total += count_tokens(str(function.get("arguments", "")))
    return total
