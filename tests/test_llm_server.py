"""The local OpenAI-compatible server, exercised over real HTTP with the real openai client."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest

from tui_eval.errors import InvalidParameterError
from tui_eval.llm_server import FAULT_HEADER, LATENCY_HEADER, LLMServer
from tui_eval.llm_server.assistant import detect_topic, reply_to
from tui_eval.llm_server.tokenizer import count_tokens, stream_pieces, truncate_to_tokens

MICROWAVE = [{"role": "user", "content": "How much does a microwave cost?"}]
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the status of a customer's order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


@pytest.fixture(scope="module")
def server():
    with LLMServer() as running:
        yield running


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as sync_client:
        yield sync_client


def post_json(url: str, payload, headers=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# --- lifecycle ------------------------------------------------------------------------------


def test_server_binds_loopback_free_port():
    with LLMServer(port=0) as running:
        assert running.port > 0
        assert running.base_url == f"http://127.0.0.1:{running.port}/v1"
        assert running._httpd.server_address[0] == "127.0.0.1"


def test_stop_releases_port_and_cuts_keepalive():
    running = LLMServer().start()
    port = running.port
    client = openai.OpenAI(base_url=running.base_url, api_key="x", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
    running.stop()
    assert not running.running
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, timeout=2)
    with LLMServer(port=port) as restarted:
        assert restarted.port == port
    client.close()


def test_invalid_options_rejected():
    with pytest.raises(InvalidParameterError, match="Invalid fault"):
        LLMServer(fault="explode")
    with pytest.raises(InvalidParameterError, match="fault_rate"):
        LLMServer(fault="429", fault_rate=2)
    with pytest.raises(InvalidParameterError, match="latency_ms"):
        LLMServer(latency_ms=-1)


def test_module_entry_prints_base_url():
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_eval.llm_server", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
        assert "$100" in answer.choices[0].message.content
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# --- chat completions -----------------------------------------------------------------------


def test_chat_completion_shape_and_usage(client):
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    message = completion.choices[0].message
    assert message.role == "assistant"
    assert "$100" in message.content
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.completion_tokens == count_tokens(message.content)
    assert usage.prompt_tokens > 0
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens


def test_chat_answers_are_deterministic(client):
    conversation = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "Can I return the microwave I bought 2 months ago?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=conversation)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=conversation)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id


def test_chat_answers_vary_across_seeds(client):
    answers = {
        client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, seed=seed).choices[0].message.content
        for seed in range(12)
    }
    assert len(answers) >= 3
    assert all("$100" in answer for answer in answers)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("How much does a microwave cost?", "prices"),
        ("Can I return the microwave I bought 2 months ago?", "returns"),
        ("I'm having trouble with my account.  I can't log in.", "account"),
        ("How long does shipping take?", "shipping"),
        ("Where is my order #10234?", "orders"),
        ("What is 2+2?", "arithmetic"),
        ("Say hello.", "greeting"),
        ("My kettle arrived damaged", "complaint"),
        ("zzz qqq", "fallback"),
    ],
)
def test_topic_detection(text, topic):
    assert detect_topic(text) == topic


def test_multi_turn_follow_up_keeps_topic():
    conversation = [
        {"role": "user", "content": "I'm having trouble with my account.  I can't log in."},
        {"role": "assistant", "content": "Are you using our website or mobile app?"},
        {"role": "user", "content": "Website"},
    ]
    reply = reply_to(conversation, model="gpt-4o-mini")
    assert reply.topic == "account"
    assert "website" in reply.content.lower()


def test_return_window_follows_purchase_age():
    recent = reply_to([{"role": "user", "content": "Can I return the toaster I bought 3 weeks ago?"}], model="m")
    old = reply_to([{"role": "user", "content": "Can I return the toaster I bought 5 months ago?"}], model="m")
    assert "90" in recent.content and not any(w in recent.content for w in ("outside", "no longer"))
    assert any(w in old.content for w in ("outside", "no longer"))


def test_streamed_chat_matches_and_reports_usage(client):
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MICROWAVE, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_max_tokens_truncates_with_length(client):
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert count_tokens(completion.choices[0].message.content) == 3


def test_n_choices_count_all_tokens(client):
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.usage.completion_tokens == sum(count_tokens(c.message.content) for c in completion.choices)


def test_tool_call_when_tools_given(client):
    calls = []
    for seed in range(8):
        completion = client.chat.completions.create(
            model="gpt-4o-mini", seed=seed, tools=[ORDER_TOOL],
            messages=[{"role": "user", "content": "Where is my order #12345?"}],
        )
        choice = completion.choices[0]
        if choice.finish_reason == "tool_calls":
            calls.append(choice.message.tool_calls[0])
        assert completion.usage.prompt_tokens + completion.usage.completion_tokens == completion.usage.total_tokens
    assert calls, "no seed produced a tool call"
    assert len(calls) < 8, "every seed produced a tool call; auto should sometimes answer in text"
    assert calls[0].function.name == "get_order_status"
    assert json.loads(calls[0].function.arguments) == {"order_id": "12345"}
    assert calls[0].id.startswith("call_")


def test_tool_result_turn_answers_in_text(client):
    completion = client.chat.completions.create(
        model="gpt-4o-mini", tools=[ORDER_TOOL], tool_choice="required",
        messages=[{"role": "user", "content": "Where is my order #12345?"}],
    )
    call = completion.choices[0].message.tool_calls[0]
    follow_up = client.chat.completions.create(
        model="gpt-4o-mini", tools=[ORDER_TOOL],
        messages=[
            {"role": "user", "content": "Where is my order #12345?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "Order 12345 left the warehouse today."},
        ],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert "left the warehouse" in follow_up.choices[0].message.content


def test_streamed_tool_call_reassembles(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", tools=[ORDER_TOOL], tool_choice="required", stream=True,
        messages=[{"role": "user", "content": "Where is my order #12345?"}],
    )
    arguments = ""
    name = None
    finish = None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            name = call.function.name or name
            arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_order_status"
    assert json.loads(arguments) == {"order_id": "12345"}
    assert finish == "tool_calls"


def test_async_client_plain_and_streamed(server):
    async def run():
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            plain = await client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, stream=True)
            pieces = [c.choices[0].delta.content or "" async for c in stream]
            return plain.choices[0].message.content, "".join(pieces)

    plain, streamed = asyncio.run(run())
    assert plain == streamed


# --- other endpoints ------------------------------------------------------------------------


def test_embeddings_deterministic_and_unit_length(client):
    first = client.embeddings.create(model="text-embedding-3-small", input=["return policy", "return policy", "kettle"])
    vectors = [d.embedding for d in first.data]
    assert len(vectors[0]) == 256
    assert vectors[0] == vectors[1]
    assert vectors[0] != vectors[2]
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-4
    assert first.usage.prompt_tokens == first.usage.total_tokens == 5


def test_embeddings_dimensions_and_float_format(server):
    status, body = post_json(f"{server.base_url}/embeddings",
                             {"model": "text-embedding-3-small", "input": "hi", "dimensions": 8,
                              "encoding_format": "float"})
    assert status == 200
    assert len(body["data"][0]["embedding"]) == 8
    status, encoded = post_json(f"{server.base_url}/embeddings",
                                {"model": "text-embedding-3-small", "input": "hi", "dimensions": 8,
                                 "encoding_format": "base64"})
    decoded = struct.unpack("<8f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert [round(v, 5) for v in decoded] == [round(v, 5) for v in body["data"][0]["embedding"]]


def test_models_list(client):
    ids = [model.id for model in client.models.list()]
    assert "gpt-4o-mini" in ids
    assert "text-embedding-3-small" in ids


def test_responses_api_plain_and_streamed(client):
    response = client.responses.create(model="gpt-4o-mini", instructions="Be brief.",
                                       input="How much does a microwave cost?")
    assert "$100" in response.output_text
    assert response.usage.input_tokens + response.usage.output_tokens == response.usage.total_tokens
    stream = client.responses.create(model="gpt-4o-mini", instructions="Be brief.",
                                     input="How much does a microwave cost?", stream=True)
    events = list(stream)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == response.output_text


def test_legacy_completion(client):
    completion = client.completions.create(model="gpt-4o-mini", prompt="How much is a kettle?")
    assert "$25" in completion.choices[0].text
    usage = completion.usage
    assert usage.prompt_tokens + usage.completion_tokens == usage.total_tokens


def test_bad_requests_get_openai_errors(server, client):
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    status, body = post_json(f"{server.base_url}/chat/completions", b"{not json")
    assert status == 400
    assert "not valid JSON" in body["error"]["message"]
    status, body = post_json(f"{server.base_url}/nowhere", {})
    assert status == 404
    assert body["error"]["code"] == "unknown_url"


def test_api_key_required_when_configured():
    with LLMServer(api_key="sk-right") as running:
        with openai.OpenAI(base_url=running.base_url, api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                wrong.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
        with openai.OpenAI(base_url=running.base_url, api_key="sk-right", max_retries=0) as right:
            right.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
        assert all("authorization" not in {k.lower() for k in r["headers"]} for r in running.request_log)


# --- latency and faults ---------------------------------------------------------------------


def test_latency_added(client, server):
    started = time.perf_counter()
    client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, extra_headers={LATENCY_HEADER: "150"})
    assert time.perf_counter() - started >= 0.15


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("drop", openai.APIConnectionError),
        ("timeout", openai.APITimeoutError),
    ],
)
def test_request_faults_raise_client_errors(client, fault, error):
    with pytest.raises(error):
        client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE,
                                       extra_headers={FAULT_HEADER: fault}, timeout=0.5)


@pytest.mark.parametrize(("fault", "error"), [("drop", openai.APIConnectionError), ("stall", openai.APITimeoutError)])
def test_stream_faults_fail_midway(client, fault, error):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE, stream=True,
                                            extra_headers={FAULT_HEADER: fault}, timeout=0.5)
    received = []
    with pytest.raises(error):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


def test_server_fault_rate_is_deterministic_per_request():
    with LLMServer(fault="500", fault_rate=0.5) as running:
        with openai.OpenAI(base_url=running.base_url, api_key="x", max_retries=0) as client:
            outcomes = []
            for index in range(20):
                messages = [{"role": "user", "content": f"How much does a kettle cost? ({index})"}]
                results = []
                for _ in range(2):
                    try:
                        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                        results.append("ok")
                    except openai.InternalServerError:
                        results.append("error")
                assert results[0] == results[1]
                outcomes.append(results[0])
    assert 2 <= outcomes.count("error") <= 18


def test_fault_attribute_changes_at_runtime():
    with LLMServer() as running:
        with openai.OpenAI(base_url=running.base_url, api_key="x", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
            running.fault = "429"
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)
            running.fault = None
            client.chat.completions.create(model="gpt-4o-mini", messages=MICROWAVE)


# --- tokenizer ------------------------------------------------------------------------------


def test_tokenizer_pieces_join_back():
    text = "  Hello, world! It's $100 🙂 — ok?  "
    assert "".join(stream_pieces(text)) == text
    assert count_tokens("Can't log in!") == 6
    assert truncate_to_tokens("one two three four", 2) == ("one two", True)
    assert truncate_to_tokens("one two", 5) == ("one two", False)
