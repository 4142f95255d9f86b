"""JSON encoding of arbitrary Python values for span inputs, outputs and attributes.

Tracing records whatever an application passes around, so encoding must not raise into user
code: an exception from a user `__repr__`, `model_dump` or property is caught and the value
is written as text instead. `dump_value` returns JSON text and `to_jsonable` the equivalent
JSON-compatible Python value. Both follow the same rules:

- str, int, float, bool, None, list and dict stay as they are; tuples become lists.
- NaN and infinities stay as the JSON extensions `NaN`, `Infinity` and `-Infinity`, as
  Python's `json` module and MLflow write them.
- pydantic models become `model_dump()` (pydantic v1: `.dict()`), dataclasses and attrs
  classes a dict of their fields, enums their `value`.
- datetime, date and time become ISO 8601 text; timedelta its total seconds as a float.
- numpy scalars become the matching Python number or bool, arrays nested lists; a pandas
  DataFrame becomes a list of row dicts and a Series a list.
- bytes, bytearray and memoryview are decoded as UTF-8, invalid sequences replaced with
  U+FFFD, so binary payloads are lossy: record them as base64 text yourself to keep them.
- sets and frozensets become lists, sorted when their elements compare, else sorted by repr.
- Path, UUID and complex numbers become `str(value)`; Decimal becomes an int when it is
  integral, else a float.
- Mappings of other types become dicts and other sequences lists; dict keys that JSON cannot
  hold become text (`str(key)`, or the value of an enum key).
- Anything else becomes readable text: its own `repr()` or `str()` when its class defines
  one, cut to `MAX_REPR_CHARS`, otherwise `<module.Class object>`.
- A container that contains itself is written as `"<circular reference>"` where it recurs,
  and nesting deeper than `MAX_DEPTH` as `"<max depth exceeded>"`.

Text is made storable on the way out: a lone UTF-16 surrogate (which UTF-8, and so SQLite,
cannot hold) becomes U+FFFD, and a high/low surrogate pair becomes the character it encodes.
`clean_text` applies the same rule to plain strings such as names, tags and event attributes.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import pathlib
import uuid
from collections.abc import Mapping, Sequence, Set
from typing import Any

logger = logging.getLogger(__name__)

MAX_DEPTH = 100
MAX_REPR_CHARS = 1000

CIRCULAR_MARKER = "<circular reference>"
DEPTH_MARKER = "<max depth exceeded>"


def clean_text(text: str) -> str:
    """Return `text` with lone surrogates replaced by U+FFFD and surrogate pairs joined."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _default(value: Any) -> Any:
    """Convert one value that the C encoder cannot write; the encoder recurses into the result."""
    return _convert_or_text(value)


# One C encoder for the whole process, built once because building it costs about as much as
# encoding a small dict. It runs without circular-reference markers, so it keeps no state
# between calls and threads can share it. A cycle then ends in RecursionError, and the slow
# path takes over.
_c_encoder = json.encoder.c_make_encoder
if _c_encoder is not None:
    _iterencode = _c_encoder(
        None, _default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
    )
else:  # pragma: no cover - CPython always ships the C accelerator
    _iterencode = json.JSONEncoder(
        ensure_ascii=False, allow_nan=True, default=_default, check_circular=False
    ).iterencode
_encode_str = json.encoder.encode_basestring


def dump_value(value: Any) -> str:
    """Return `value` as JSON text, following the module's rules; any Exception inside is caught."""
    value_type = type(value)
    if value_type is str:
        return clean_text(_encode_str(value))
    if value_type is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if value_type is bool:
        return "true" if value else "false"
    if value_type is float:
        return _float_text(value)
    try:
        text = "".join(_iterencode(value, 0))
    except Exception:  # noqa: BLE001 - see below
        # Dict keys JSON cannot hold, a circular reference or very deep nesting make the C
        # encoder raise TypeError, ValueError or RecursionError. The slow path handles each.
        text = _dump_converted(value)
    return clean_text(text)


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return float.__repr__(value)


def _dump_converted(value: Any) -> str:
    try:
        return json.dumps(to_jsonable(value), ensure_ascii=False, allow_nan=True)
    except Exception:  # noqa: BLE001 - last resort so that tracing never raises
        logger.debug("Could not encode a value of type %s as JSON", type(value).__name__, exc_info=True)
        return json.dumps(_fallback_text(value), ensure_ascii=False)


def to_jsonable(value: Any) -> Any:
    """Return a JSON-compatible copy of `value`, following the module's rules; any Exception inside is caught.

    Strings in the result are cleaned with `clean_text`.
    """
    try:
        return _to_jsonable(value, 0, set())
    except Exception:  # noqa: BLE001 - a user __repr__, model_dump or property may raise anything
        logger.debug("Could not convert a value of type %s", type(value).__name__, exc_info=True)
        return _fallback_text(value)


def _to_jsonable(value: Any, depth: int, active: set[int]) -> Any:
    value_type = type(value)
    if value_type is str:
        return clean_text(value)
    if value_type in (int, bool, type(None)):
        return value
    if value_type is float:
        return value
    if depth >= MAX_DEPTH:
        return DEPTH_MARKER

    if isinstance(value, (dict, list, tuple)):
        container_id = id(value)
        if container_id in active:
            return CIRCULAR_MARKER
        active.add(container_id)
        try:
            if isinstance(value, dict):
                return {
                    _key_text(key): _to_jsonable(item, depth + 1, active) for key, item in value.items()
                }
            return [_to_jsonable(item, depth + 1, active) for item in value]
        finally:
            active.discard(container_id)

    if isinstance(value, str):
        # str subclasses, including str-valued enums: their text is the value.
        return clean_text(str.__str__(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return int(value)
    if isinstance(value, float):
        return float(value)

    converted = _convert_or_text(value)
    if type(converted) is str:
        return clean_text(converted)
    # The converted form may contain further values to convert. The source object stays
    # marked active while they are converted, so a part that leads back to it is a cycle.
    source_id = id(value)
    if source_id in active:
        return CIRCULAR_MARKER
    active.add(source_id)
    try:
        return _to_jsonable(converted, depth + 1, active)
    finally:
        active.discard(source_id)


def _key_text(key: Any) -> str:
    if type(key) is str:
        return clean_text(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, enum.Enum):
        return _key_text(key.value)
    if isinstance(key, str):
        return clean_text(str.__str__(key))
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        # The spelling json.dumps uses for float keys, so both paths agree.
        return json.dumps(float(key))
    try:
        return clean_text(str(key))
    except Exception:  # noqa: BLE001 - a user __str__ may raise anything
        return _fallback_text(key)


class _Unchanged:
    pass


_UNCHANGED = _Unchanged()


def _convert_or_text(value: Any) -> Any:
    """Convert one level of `value`, or return readable text when it has no JSON form.

    A conversion that raises (a user `model_dump`, property or `__iter__`) gives the text
    form of that one value, so the rest of the structure is kept.
    """
    try:
        converted = _convert_one(value)
    except Exception:  # noqa: BLE001 - user code inside the conversion may raise anything
        logger.debug("Could not convert a value of type %s", type(value).__name__, exc_info=True)
        return _fallback_text(value)
    if converted is _UNCHANGED:
        return _fallback_text(value)
    return converted


def _convert_one(value: Any) -> Any:
    """Convert one level of a value JSON has no form for, or return `_UNCHANGED`."""
    value_type = type(value)
    module = value_type.__module__ or ""
    if module.startswith("numpy"):
        converted = _convert_numpy(value)
        if converted is not _UNCHANGED:
            return converted
    elif module.startswith("pandas"):
        converted = _convert_pandas(value)
        if converted is not _UNCHANGED:
            return converted

    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset)):
        return _sorted_items(value)
    if isinstance(value, decimal.Decimal):
        return _decimal_number(value)
    if isinstance(value, (pathlib.PurePath, uuid.UUID, complex)):
        return str(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"

    model_dump = getattr(value_type, "model_dump", None)
    if model_dump is not None and not isinstance(value, type) and callable(model_dump):
        return value.model_dump()
    if hasattr(value_type, "__fields__") and hasattr(value_type, "dict") and module != "builtins":
        # pydantic v1 models, and pydantic.v1 models under pydantic 2.
        if _is_pydantic_v1_model(value_type):
            return value.dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    attrs_fields = getattr(value_type, "__attrs_attrs__", None)
    if attrs_fields is not None and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in attrs_fields}

    if isinstance(value, Mapping):
        return dict(value.items())
    if isinstance(value, Set):
        return _sorted_items(value)
    if isinstance(value, Sequence) and not isinstance(value, range):
        return list(value)
    return _UNCHANGED


def _is_pydantic_v1_model(value_type: type) -> bool:
    for base in value_type.__mro__:
        if base.__name__ == "BaseModel" and base.__module__.startswith("pydantic"):
            return True
    return False


def _sorted_items(items: Any) -> list[Any]:
    elements = list(items)
    try:
        return sorted(elements)
    except Exception:  # noqa: BLE001 - elements that do not compare, or a user __lt__ that raises
        return sorted(elements, key=_safe_repr)


def _decimal_number(value: decimal.Decimal) -> int | float:
    if value.is_finite() and value == value.to_integral_value():
        return int(value)
    return float(value)


def _convert_numpy(value: Any) -> Any:
    to_list = getattr(value, "tolist", None)
    if to_list is None:
        return _UNCHANGED
    # ndarray.tolist() returns nested Python lists, and numpy scalars (np.generic) return the
    # matching Python scalar: int, float, bool, complex, str, bytes or datetime.
    return to_list()


def _convert_pandas(value: Any) -> Any:
    type_name = type(value).__name__
    if type_name == "DataFrame":
        return value.to_dict(orient="records")
    if type_name in ("Series", "Index"):
        return value.tolist()
    if type_name in ("NaTType", "NAType"):
        return None
    return _UNCHANGED


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a user __repr__ may raise anything
        return _class_label(value)


def _class_label(value: Any) -> str:
    value_type = type(value)
    module = value_type.__module__
    qualified = value_type.__qualname__ if module in (None, "builtins") else f"{module}.{value_type.__qualname__}"
    return f"<{qualified} object>"


def _fallback_text(value: Any) -> str:
    """Return readable text for a value with no JSON form: its own repr or str, else its class."""
    value_type = type(value)
    try:
        if value_type.__repr__ is not object.__repr__:
            text = repr(value)
        elif value_type.__str__ is not object.__str__:
            text = str(value)
        else:
            return _class_label(value)
    except Exception:  # noqa: BLE001 - a user __repr__ or __str__ may raise anything
        return _class_label(value)
    if not isinstance(text, str):
        return _class_label(value)
    if len(text) > MAX_REPR_CHARS:
        text = text[: MAX_REPR_CHARS - 3] + "..."
    return clean_text(text)

