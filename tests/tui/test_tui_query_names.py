"""A `/` filter naming an unknown score or field is an error, not an empty list."""

from __future__ import annotations

import pytest

from tui_eval.errors import FilterError
from tui_eval.tui.query import compile_query


def test_unknown_name_lists_scores_and_fields():
    with pytest.raises(FilterError) as raised:
        compile_query("bogus_field=1", ["exact_match", "length"])
    message = str(raised.value)
    assert "'bogus_field'" in message
    assert "scores: exact_match, length" in message
    assert "duration" in message


def test_known_score_and_field_names_compile():
    assert compile_query("exact_match=false", ["exact_match"]) is not None
    assert compile_query("duration>900", ["exact_match"]) is not None
    assert compile_query("refund", ["exact_match"]) is not None


def test_no_score_columns_yet_says_so():
    with pytest.raises(FilterError, match="scores: none yet"):
        compile_query("exact_match=false", [])


def test_without_names_any_score_name_compiles():
    assert compile_query("anything=1") is not None
