"""demo/app.py: the tutorial's support assistant, traced, against the local server or OPENAI_BASE_URL."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

import tui_eval
import tui_eval.openai
from tui_eval.entities import SpanType
from tui_eval.llm_server import LLMServer
from tui_eval.tracing import provider, recorder

APP_PATH = Path(__file__).resolve().parents[1] / "demo" / "app.py"
_module_numbers = itertools.count()


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    provider.reset()
    recorder.clear()
    tui_eval.set_tracking_uri(tmp_path / "demo.db")
    yield tmp_path / "demo.db"
    tui_eval.openai.autolog(disable=True, silent=True)
    provider.reset()
    recorder.clear()


def load_demo_app():
    """Import a fresh copy of demo/app.py, so that each test picks its endpoint anew."""
    name = f"demo_app_under_test_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(name, APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_local_server_used_without_key():
    app = load_demo_app()
    try:
        answer = app.sample_app([{"role": "user", "content": "How much does a microwave cost?"}])
        assert "$100" in answer
        assert app.local_server is not None
        assert app.local_server.base_url.startswith("http://127.0.0.1:")
    finally:
        if app.local_server is not None:
            app.local_server.stop()


def test_trace_has_root_and_chat_span():
    app = load_demo_app()
    messages = [{"role": "user", "content": "Can I return the microwave I bought 2 months ago?"}]
    try:
        answer = app.sample_app(messages)
    finally:
        app.local_server.stop()
    trace = tui_eval.get_trace(tui_eval.get_last_active_trace_id())
    root = trace.data.spans[0]
    assert root.name == "sample_app"
    assert root.inputs == {"messages": messages}
    assert root.outputs == answer
    chat = trace.search_spans(span_type=SpanType.CHAT_MODEL)
    assert len(chat) == 1
    assert chat[0].parent_id == root.span_id
    assert chat[0].inputs["messages"] == [{"role": "system", "content": app.SYSTEM_PROMPT}, *messages]
    assert chat[0].inputs["model"] == app.MODEL
    assert chat[0].outputs["choices"][0]["message"]["content"] == answer
    assert trace.info.token_usage["total_tokens"] > 0


def test_openai_base_url_respected(monkeypatch):
    with LLMServer(api_key="sk-demo-test-key") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-demo-test-key")
        app = load_demo_app()
        answer = app.sample_app([{"role": "user", "content": "Say hello."}])
        assert app.local_server is None
        assert answer
        assert [entry["path"] for entry in server.request_log] == ["/v1/chat/completions"]
