"""The seed tutorial end to end: generate traces once with an app, then re-score the stored traces.

The app calls the real ``openai`` client against the local OpenAI-compatible server, with
``tui_eval.openai.autolog()`` recording the chat call, and everything lands in a SQLite store
under tmp_path.
"""

from __future__ import annotations

import openai
import pytest

import tui_eval.openai
from tui_eval.entities import Feedback, SpanType, Trace
from tui_eval.genai import evaluate
from tui_eval.genai.scorers import scorer
from tui_eval.llm_server import LLMServer
from tui_eval.tracing import provider, recorder, search_traces, trace

SUPPORT_CONVERSATIONS = [
    {
        "inputs": {
            "messages": [
                {"role": "user", "content": "How do I return a jacket I bought last week?"},
            ]
        },
        "expectations": {"expected_keywords": ["return"]},
    },
    {
        "inputs": {
            "messages": [
                {"role": "user", "content": "My order has not arrived yet. Where is it?"},
            ]
        },
        "expectations": {"expected_keywords": ["order"]},
    },
    {
        "inputs": {
            "messages": [
                {"role": "user", "content": "I forgot my password and cannot log in."},
                {"role": "assistant", "content": "I can help with that."},
                {"role": "user", "content": "The reset email never came."},
            ]
        },
    },
]


@pytest.fixture
def llm_client(tmp_path, monkeypatch):
    monkeypatch.setenv("TUI_EVAL_PROGRESS", "0")
    monkeypatch.setenv("TUI_EVAL_STORE", str(tmp_path / "tutorial.db"))
    provider.reset()
    recorder.clear()
    tui_eval.openai.autolog()
    try:
        with LLMServer(port=0) as server:
            yield openai.OpenAI(base_url=server.base_url, api_key="unused-local-key")
    finally:
        tui_eval.openai.autolog(disable=True, silent=True)
    provider.reset()
    recorder.clear()


def test_tutorial_generate_then_rescore(llm_client, tmp_path):
    calls = []

    @trace
    def sample_app(messages: list[dict[str, str]]) -> str:
        calls.append(messages)
        response = llm_client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return response.choices[0].message.content

    @scorer
    def placeholder_metric() -> int:
        return 1

    # Step 1: run the app once over the data to generate traces.
    generated = evaluate(data=SUPPORT_CONVERSATIONS, scorers=[placeholder_metric], predict_fn=sample_app)
    assert generated.metrics == {"placeholder_metric/mean": 1.0}
    assert provider.get_store_path() == tmp_path / "tutorial.db"
    app_calls = len(calls)
    assert app_calls == 4  # one pre-flight call and one per conversation

    # Step 2: fetch the stored traces of that run.
    generated_traces = search_traces(run_id=generated.run_id)
    assert len(generated_traces) == 3
    for cell in generated_traces["trace"]:
        stored = Trace.from_json(cell)
        assert stored.data.root_span.name == "sample_app"
        [chat] = stored.search_spans(span_type=SpanType.CHAT_MODEL)
        assert chat.outputs["choices"][0]["message"]["content"]

    # Step 3: write scorers and re-score the stored traces without calling the app.
    @scorer
    def response_length(outputs: str) -> int:
        return len(outputs)

    @scorer
    def mentions_keywords(outputs: str, expectations: dict) -> Feedback:
        keywords = expectations.get("expected_keywords", [])
        missing = [word for word in keywords if word not in outputs.lower()]
        return Feedback(value="no" if missing else "yes", rationale=", ".join(missing) or "all present")

    rescored = evaluate(data=generated_traces, scorers=[response_length, mentions_keywords])

    assert len(calls) == app_calls
    lengths = [len(text) for text in generated_traces["response"]]
    assert rescored.metrics["response_length/mean"] == pytest.approx(sum(lengths) / 3)
    assert 0.0 <= rescored.metrics["mentions_keywords/mean"] <= 1.0
    assert sorted(rescored.result_df["trace_id"]) == sorted(generated_traces["trace_id"])
    assert rescored.result_df["response_length/value"].tolist() == lengths

    # The new feedback sits on the same traces, tagged with the second run.
    again = search_traces(run_id=rescored.run_id, return_type="list")
    assert len(again) == 3
    for stored in again:
        [length] = stored.search_assessments("response_length")
        assert length.run_id == rescored.run_id
        assert stored.search_assessments("placeholder_metric")[0].run_id == generated.run_id
