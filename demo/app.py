"""The support assistant from MLflow's code-based scorer tutorial, traced with tui_eval.

One traced function, `sample_app(messages)`: it puts a system prompt in front of the
user's messages, makes one chat completion and returns the text. `autolog()` records the
OpenAI call as a CHAT_MODEL span under the function's span.

Endpoint, first match wins:
- `OPENAI_BASE_URL` set: that endpoint, with `OPENAI_API_KEY` (or a placeholder key);
- `OPENAI_API_KEY` set: OpenAI itself;
- neither: the local OpenAI-compatible server that ships with tui_eval, started on
  127.0.0.1 on first use (deterministic responses, no network).

Run it over the demo dataset with:

    tui-eval generate demo/app.py:sample_app --data demo/dataset.jsonl
"""

from __future__ import annotations

import atexit
import os
import threading

import openai

import tui_eval
import tui_eval.openai

MODEL = os.environ.get("TUI_EVAL_DEMO_MODEL", "gpt-4o-mini")
SYSTEM_PROMPT = (
    "You are a helpful customer-support assistant for Homestead, a home-goods shop. "
    "Answer briefly and politely."
)
# Latency the local server adds to each response, in milliseconds, so that spans have
# realistic durations. A real endpoint ignores it.
LOCAL_LATENCY_MS = float(os.environ.get("TUI_EVAL_DEMO_LATENCY_MS", "0"))

tui_eval.openai.autolog()

_client: openai.OpenAI | None = None
_client_lock = threading.Lock()
# The local server this module started, if any (stopped when the process exits).
local_server = None


def get_client() -> openai.OpenAI:
    """Return the OpenAI client for the configured endpoint, starting the local server if needed."""
    global _client
    with _client_lock:
        if _client is None:
            _client = _make_client()
        return _client


def _make_client() -> openai.OpenAI:
    if os.environ.get("OPENAI_BASE_URL"):
        return openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "tui-eval-local")
    if os.environ.get("OPENAI_API_KEY"):
        return openai.OpenAI()

    from tui_eval.llm_server import LLMServer

    global local_server
    local_server = LLMServer(port=0, latency_ms=LOCAL_LATENCY_MS).start()
    atexit.register(local_server.stop)
    return openai.OpenAI(base_url=local_server.base_url, api_key="tui-eval-local")


@tui_eval.trace
def sample_app(messages: list[dict[str, str]]) -> str:
    """Answer a support conversation: the system prompt plus the user's messages, one completion."""
    messages_for_llm = [{"role": "system", "content": SYSTEM_PROMPT}, *messages]
    response = get_client().chat.completions.create(model=MODEL, messages=messages_for_llm)
    return response.choices[0].message.content


if __name__ == "__main__":
    print(sample_app([{"role": "user", "content": "How much does a microwave cost?"}]))
