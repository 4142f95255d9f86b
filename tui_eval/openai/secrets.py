"""Masking of credentials before a request is recorded in a span.

Three layers, because a key can reach a span by several paths:
- header, query and body entries whose name looks like a credential are replaced by
  `REDACTED` in the recorded copy of the request (the request sent is never changed);
- the credentials the client is configured with (api key, webhook secret, key-bearing
  default headers and query parameters) are collected per call and removed from every attribute
  and event of the span before it ends;
- exception messages and stack traces get the same removal plus a pattern pass for bearer
  tokens, ``sk-`` keys and key-like URL query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Secrets shorter than this are not searched for in recorded text: replacing a 3-character
# "key" would mangle ordinary words, and such values are not real credentials.
MIN_SECRET_LENGTH = 8

# Header names the OpenAI SDK adds on its own; they are transport details, not caller input.
SDK_HEADER_PREFIX = "x-stainless-"

_SECRET_NAME_PARTS = (
    "authorization",
    "api-key",
    "api_key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "cookie",
    "signature",
    "credential",
    "session",
)
_SECRET_NAMES = frozenset({"key", "sig", "code", "auth", "pwd"})

_TEXT_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + REDACTED),
    (
        re.compile(
            r"(?i)([?&;](?:key|api[-_]?key|apikey|access[-_]?token|token|secret|client[-_]?secret|"
            r"sig|signature|password|code|auth)=)[^&#\s\"'<>]+"
        ),
        r"\1" + REDACTED,
    ),
)


def is_secret_name(name: Any) -> bool:
    """Return True when a header, query or body key looks like it carries a credential."""
    lowered = str(name).lower()
    if lowered in _SECRET_NAMES:
        return True
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def mask_headers(headers: Any) -> Any:
    """Return a copy of extra_headers with credentials masked and the SDK's own headers left out."""
    if not isinstance(headers, Mapping):
        return headers
    masked = {}
    for name, value in headers.items():
        if str(name).lower().startswith(SDK_HEADER_PREFIX):
            continue
        masked[name] = REDACTED if is_secret_name(name) and value is not None else value
    return masked


def mask_mapping(value: Any, depth: int = 0) -> Any:
    """Return a copy of a query or body mapping with credential-named entries masked, recursively."""
    if depth > 20:
        return value
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if is_secret_name(key) and item is not None else mask_mapping(item, depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_mapping(item, depth + 1) for item in value]
    return value


def client_secrets(client: Any) -> tuple[str, ...]:
    """Collect the credential strings an OpenAI client holds, to strip from recorded text."""
    found: list[str] = []
    for attribute in ("api_key", "webhook_secret", "_azure_ad_token", "azure_ad_token"):
        value = getattr(client, attribute, None)
        if isinstance(value, str):
            found.append(value)
    for attribute in ("_custom_headers", "_custom_query"):
        mapping = getattr(client, attribute, None)
        if isinstance(mapping, Mapping):
            found.extend(str(v) for k, v in mapping.items() if is_secret_name(k) and v is not None)
    return _usable(found)


def request_secrets(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """Collect the credential values a call passes in extra_headers, extra_query or extra_body."""
    found: list[str] = []
    for key in ("extra_headers", "extra_query", "extra_body"):
        _collect_named(kwargs.get(key), found, 0)
    return _usable(found)


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and credential-looking patterns from free text."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_known(text: str, secrets: Iterable[str]) -> str:
    """Remove known secret strings from text (the cheap pass used on every attribute)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _collect_named(value: Any, found: list[str], depth: int) -> None:
    if depth > 20 or not isinstance(value, Mapping):
        return
    for key, item in value.items():
        if is_secret_name(key) and isinstance(item, (str, bytes)):
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            found.append(text)
            # "Bearer abc..." also leaks through the bare token.
            parts = text.split(None, 1)
            if len(parts) == 2:
                found.append(parts[1])
        elif isinstance(item, Mapping):
            _collect_named(item, found, depth + 1)


def _usable(values: list[str]) -> tuple[str, ...]:
    if len(values) == 1:
        value = values[0]
        return (value,) if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH else ()
    unique = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
    # Longest first, so that a token inside a longer "Bearer <token>" value is not cut in two.
    return tuple(sorted(unique, key=len, reverse=True))
