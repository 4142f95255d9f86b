"""demo/dataset.jsonl: the tutorial's conversations plus the support set, all readable rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui_eval.generate import check_record, read_dataset

DATASET = Path(__file__).resolve().parents[1] / "demo" / "dataset.jsonl"
TUTORIAL_ROWS = [
    ("What is 2+2?", {"expected_response": "2+2 equals 4.", "expected_keywords": ["4", "four", "equals"]}),
    ("Describe MLflow in one sentence.", {
        "expected_response": "MLflow is the largest open source AI engineering platform, enabling teams to build "
                             "production-quality agents and ML models.",
        "expected_keywords": ["mlflow", "open-source", "platform", "machine learning"],
    }),
    ("Say hello.", {"expected_response": "Hello there!"}),
]


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]


def user_texts(row):
    return [m["content"] for m in row["inputs"]["messages"] if m["role"] == "user"]


def test_every_row_is_readable():
    loaded, problems = read_dataset(DATASET)
    assert problems == []
    assert len(loaded) >= 33


def test_tutorial_rows_come_first(rows):
    for row, (question, expectations) in zip(rows, TUTORIAL_ROWS):
        assert row["inputs"] == {"messages": [{"role": "user", "content": question}]}
        assert row["expectations"] == expectations


def test_tutorial_generation_rows_present(rows):
    firsts = [user_texts(row)[0] for row in rows]
    assert "How much does a microwave cost?" in firsts
    assert "Can I return the microwave I bought 2 months ago?" in firsts
    assert "I'm having trouble with my account.  I can't log in." in firsts


def test_rows_have_messages_and_roles(rows):
    for row in rows:
        check_record(row)
        messages = row["inputs"]["messages"]
        assert set(row["inputs"]) == {"messages"}
        assert messages[-1]["role"] == "user"
        assert all(m["role"] in ("user", "assistant") for m in messages)


def test_most_rows_carry_expectations(rows):
    support = rows[3:]
    assert len(support) >= 30
    with_all = [r for r in support if {"expected_response", "expected_keywords", "max_length"} <= set(r.get("expectations", {}))]
    assert len(with_all) >= len(support) * 0.7
    assert any("expectations" not in r for r in rows), "a row without expectations shows the {} case"


def test_multi_turn_rows_present(rows):
    multi = [r for r in rows if len(r["inputs"]["messages"]) > 1]
    assert len(multi) >= 5


@pytest.mark.parametrize(
    ("label", "predicate"),
    [
        ("markup", lambda text: "[bold]" in text),
        ("emoji", lambda text: any(ord(ch) >= 0x1F300 for ch in text)),
        ("control characters", lambda text: "\x1b" in text or "\t" in text),
        ("very long", lambda text: len(text) > 1500),
        ("Spanish", lambda text: "¿" in text),
        ("non-Latin script", lambda text: any("\u3040" <= ch <= "\u30ff" for ch in text)),
    ],
)
def test_tricky_rows_present(rows, label, predicate):
    assert any(predicate(text) for row in rows for text in user_texts(row)), f"no {label} row"
