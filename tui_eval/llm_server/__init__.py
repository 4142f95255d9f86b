"""A small OpenAI-compatible server on 127.0.0.1 with deterministic support-assistant answers.

The demo and the tests talk to it over real HTTP with the real `openai` client, so every part
of the client path (JSON, SSE streams, usage, tool calls, errors) runs offline. Stdlib only.

    with LLMServer(port=0, latency_ms=50) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
"""

from tui_eval.llm_server.server import FAULT_HEADER, FAULTS, HOST, LATENCY_HEADER, LLMServer

__all__ = ["FAULTS", "FAULT_HEADER", "HOST", "LATENCY_HEADER", "LLMServer"]
