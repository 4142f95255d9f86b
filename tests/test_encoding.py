"""dump_value and to_jsonable: every value becomes JSON, and encoding never raises."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import sqlite3
import uuid

import numpy as np
import pandas as pd
import pydantic
import pytest

from tui_eval.tracing.encoding import (
    CIRCULAR_MARKER,
    DEPTH_MARKER,
    MAX_DEPTH,
    MAX_REPR_CHARS,
    clean_text,
    dump_value,
    to_jsonable,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(str, enum.Enum):
    HIGH = "high"


class Rank(enum.IntEnum):
    FIRST = 1


class Order(pydantic.BaseModel):
    order_id: str
    placed: datetime.date
    tags: set[str] = set()


@dataclasses.dataclass
class Document:
    uri: str
    score: float
    labels: frozenset = frozenset()


class Opaque:
    pass


class WithRepr:
    def __repr__(self) -> str:
        return "WithRepr(id=7)"


class WithStr:
    def __str__(self) -> str:
        return "with-str"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class BadDump(pydantic.BaseModel):
    x: int = 1

    def model_dump(self, **kwargs):
        raise RuntimeError("model_dump exploded")


def both(value):
    """Return (decoded dump_value, to_jsonable) so each case checks that both paths agree."""
    return json.loads(dump_value(value)), to_jsonable(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (42, 42),
        (1.5, 1.5),
        (True, True),
        (None, None),
        ({"a": [1, 2, {"b": None}]}, {"a": [1, 2, {"b": None}]}),
        ((1, "two"), [1, "two"]),
        (Color.RED, "red"),
        (Color.BLUE, 2),
        (Level.HIGH, "high"),
        (Rank.FIRST, 1),
        (datetime.datetime(2025, 6, 1, 12, 0, 5), "2025-06-01T12:00:05"),
        (datetime.date(2025, 6, 1), "2025-06-01"),
        (datetime.time(8, 30), "08:30:00"),
        (datetime.timedelta(minutes=1, milliseconds=500), 60.5),
        (pathlib.PurePosixPath("/data/x.json"), "/data/x.json"),
        (decimal.Decimal("3"), 3),
        (decimal.Decimal("1.25"), 1.25),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (1 + 2j, "(1+2j)"),
        (b"plain bytes", "plain bytes"),
        (bytearray(b"abc"), "abc"),
        (b"bad \xff byte", "bad \ufffd byte"),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (ValueError("broken"), "ValueError: broken"),
        (range(3), "range(0, 3)"),
    ],
)
def test_value_encodes_to_expected_json(value, expected):
    dumped, converted = both(value)
    assert dumped == expected
    assert converted == expected


def test_set_of_mixed_types_is_sorted_by_repr():
    dumped, converted = both({1, "a"})
    assert dumped == ["a", 1]
    assert converted == ["a", 1]


def test_pydantic_model_becomes_its_fields():
    order = Order(order_id="A-1", placed=datetime.date(2025, 1, 2), tags={"x"})
    dumped, converted = both(order)
    assert dumped == {"order_id": "A-1", "placed": "2025-01-02", "tags": ["x"]}
    assert converted == dumped


def test_dataclass_becomes_its_fields():
    document = Document("kb://a", 0.5, frozenset({"z", "y"}))
    dumped, converted = both(document)
    assert dumped == {"uri": "kb://a", "score": 0.5, "labels": ["y", "z"]}
    assert converted == dumped


def test_numpy_scalars_and_arrays_become_python_values():
    value = {
        "int": np.int64(7),
        "float32": np.float32(0.5),
        "bool": np.bool_(True),
        "array": np.array([[1, 2], [3, 4]]),
        "date": np.datetime64("2025-06-01"),
    }
    dumped, converted = both(value)
    expected = {"int": 7, "float32": 0.5, "bool": True, "array": [[1, 2], [3, 4]], "date": "2025-06-01"}
    assert dumped == expected
    assert converted == expected
    assert type(converted["int"]) is int


def test_pandas_frame_and_series():
    frame = pd.DataFrame({"q": ["a", "b"], "n": [1, 2]})
    dumped, converted = both({"frame": frame, "series": pd.Series([1.5, 2.5]), "missing": pd.NA})
    expected = {"frame": [{"q": "a", "n": 1}, {"q": "b", "n": 2}], "series": [1.5, 2.5], "missing": None}
    assert dumped == expected
    assert converted == expected


def test_nan_and_infinity_stay_as_json_extensions():
    text = dump_value({"nan": math.nan, "inf": math.inf, "neg": -math.inf, "arr": np.array([np.nan])})
    assert text == '{"nan": NaN, "inf": Infinity, "neg": -Infinity, "arr": [NaN]}'
    assert dump_value(math.nan) == "NaN"
    decoded = json.loads(text)
    assert math.isnan(decoded["nan"])
    converted = to_jsonable(math.inf)
    assert converted == math.inf


def test_non_ascii_text_is_written_as_is():
    assert dump_value("日本語 ✓ é") == '"日本語 ✓ é"'
    assert dump_value({"k": "😀"}) == '{"k": "😀"}'


def test_markup_ansi_and_nul_survive_verbatim():
    text = "[bold]x[/bold] [/ \x1b[31mred\x1b[0m \x00 end"
    assert json.loads(dump_value(text)) == text
    assert to_jsonable(text) == text


def test_object_without_json_form_becomes_class_label():
    dumped, converted = both(Opaque())
    assert dumped == f"<{__name__}.Opaque object>"
    assert converted == dumped


def test_object_with_own_repr_or_str_uses_it():
    assert both(WithRepr()) == ("WithRepr(id=7)", "WithRepr(id=7)")
    assert both(WithStr()) == ("with-str", "with-str")


def test_long_repr_is_cut():
    class Long:
        def __repr__(self) -> str:
            return "x" * (MAX_REPR_CHARS * 3)

    dumped = json.loads(dump_value(Long()))
    assert len(dumped) == MAX_REPR_CHARS
    assert dumped.endswith("...")


def test_repr_that_raises_falls_back_to_class_label():
    dumped, converted = both([1, BadRepr()])
    assert dumped == [1, f"<{__name__}.BadRepr object>"]
    assert converted == dumped


def test_model_dump_that_raises_keeps_the_rest():
    dumped, converted = both({"ok": 1, "bad": BadDump()})
    assert dumped["ok"] == 1
    assert converted["ok"] == 1
    assert isinstance(dumped["bad"], str)
    assert converted["bad"] == dumped["bad"]


def test_self_referencing_list_and_dict():
    items: list = [1]
    items.append(items)
    mapping: dict = {"name": "loop"}
    mapping["self"] = mapping
    assert both(items) == ([1, CIRCULAR_MARKER], [1, CIRCULAR_MARKER])
    assert both(mapping) == ({"name": "loop", "self": CIRCULAR_MARKER}, {"name": "loop", "self": CIRCULAR_MARKER})


def test_shared_object_is_not_a_cycle():
    shared = {"v": 1}
    dumped, converted = both([shared, shared])
    assert dumped == [{"v": 1}, {"v": 1}]
    assert converted == dumped


def test_cycle_through_dataclass():
    @dataclasses.dataclass
    class Node:
        name: str
        next: object = None

    node = Node("a")
    node.next = node
    dumped, converted = both(node)
    assert dumped == {"name": "a", "next": CIRCULAR_MARKER}
    assert converted == dumped


def test_deep_nesting_is_cut_at_max_depth():
    nested: list = []
    current = nested
    for _ in range(MAX_DEPTH * 20):
        inner: list = []
        current.append(inner)
        current = inner
    dumped = json.loads(dump_value(nested))
    depth = 0
    while isinstance(dumped, list):
        dumped = dumped[0]
        depth += 1
    assert dumped == DEPTH_MARKER
    assert depth == MAX_DEPTH


def test_keys_json_cannot_hold_become_text():
    value = {(1, 2): "tuple", Color.RED: "enum", None: "none", 1.5: "float", 3: "int", True: "bool"}
    dumped, converted = both(value)
    expected = {"(1, 2)": "tuple", "red": "enum", "null": "none", "1.5": "float", "3": "int", "true": "bool"}
    assert dumped == expected
    assert converted == expected


def test_lone_surrogate_becomes_replacement_character():
    assert dump_value("a\ud800b") == '"a\ufffdb"'
    assert to_jsonable({"k\udfff": "v\ud83d"}) == {"k\ufffd": "v\ufffd"}
    assert clean_text("x\udc80") == "x\ufffd"


def test_surrogate_pair_becomes_its_character():
    assert clean_text("\ud83d\ude00") == "😀"
    assert json.loads(dump_value(["\ud83d\ude00"])) == ["😀"]


def test_cleaned_text_is_storable_in_sqlite():
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (v TEXT)")
    for value in ("a\ud800", {"x": "\udfff"}, b"\xff\xfe", ["\ud83d\ude00"]):
        connection.execute("INSERT INTO t VALUES (?)", (dump_value(value),))
    stored = [row[0] for row in connection.execute("SELECT v FROM t")]
    assert stored == ['"a\ufffd"', '{"x": "\ufffd"}', '"\ufffd\ufffd"', '["😀"]']


def test_clean_text_returns_valid_text_unchanged():
    text = "plain ✓"
    assert clean_text(text) is text


def test_generator_is_not_consumed():
    def numbers():
        yield 1

    generator = numbers()
    dumped = json.loads(dump_value(generator))
    assert dumped.startswith("<generator object")
    assert next(generator) == 1


def test_class_object_uses_its_repr():
    assert json.loads(dump_value(Opaque)) == f"<class '{__name__}.Opaque'>"


def test_str_subclass_keeps_its_text():
    class Tag(str):
        pass

    assert dump_value(Tag("t")) == '"t"'
    assert to_jsonable({"k": Tag("t")}) == {"k": "t"}
