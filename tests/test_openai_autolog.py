"""tui_eval.openai.autolog against the local server, through the real openai client (sync and async)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging

import openai
import pydantic
import pytest
from openai.resources.chat.completions import AsyncCompletions, Completions

import tui_eval.openai as tui_openai
import tui_eval.tracing as tracing
from tui_eval.entities import SpanStatusCode, SpanType, Trace
from tui_eval.io import export_store
from tui_eval.llm_server import FAULT_HEADER, LLMServer
from tui_eval.openai import recording as recording_module
from tui_eval.openai.autolog import ORIGINAL_ATTRIBUTE
from tui_eval.tracing import provider, recorder

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "How much does a microwave cost?"},
]
ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up the status of a customer's order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@pytest.fixture(scope="module")
def server():
    with LLMServer() as running:
        yield running


@pytest.fixture(autouse=True)
def store_path(tmp_path):
    path = tmp_path / "traces.db"
    provider.reset()
    recorder.clear()
    tracing.set_tracking_uri(path)
    tui_openai.autolog()
    yield path
    tui_openai.autolog(disable=True)
    provider.reset()
    recorder.clear()


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test-key", max_retries=0) as sync_client:
        yield sync_client


def async_client(server, **options):
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test-key", max_retries=0, **options)


def last_trace() -> Trace:
    trace_id = tracing.get_last_active_trace_id()
    assert trace_id is not None, "no trace finished"
    trace = tracing.get_trace(trace_id)
    assert trace is not None
    return trace


def llm_span(trace: Trace, span_type: str = SpanType.CHAT_MODEL):
    spans = trace.search_spans(span_type=span_type)
    assert len(spans) == 1, f"expected one {span_type} span, found {[s.name for s in trace.data.spans]}"
    return spans[0]


# --- non-streamed calls ---------------------------------------------------------------------


def test_chat_span_shape(client):
    @tracing.trace
    def sample_app(messages):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
        return response.choices[0].message.content

    answer = sample_app(MESSAGES[1:])
    trace = last_trace()
    root = trace.data.spans[0]
    span = llm_span(trace)
    assert span.name == "Completions"
    assert span.parent_id == root.span_id
    assert span.inputs == {"model": "gpt-4o-mini", "messages": MESSAGES[1:], "temperature": 0}
    assert span.get_attribute("model") == "gpt-4o-mini"
    assert span.get_attribute("temperature") == 0
    assert span.get_attribute("mlflow.message.format") == "openai"
    assert span.get_attribute("messages") is None
    assert span.status.status_code == SpanStatusCode.OK
    outputs = span.outputs
    assert isinstance(outputs, dict)
    assert outputs["object"] == "chat.completion"
    assert outputs["choices"][0]["message"]["content"] == answer
    usage = outputs["usage"]
    assert span.get_attribute("mlflow.chat.tokenUsage") == {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }
    assert trace.info.token_usage["total_tokens"] == usage["total_tokens"]


def test_inputs_hold_no_sdk_sentinels(client):
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = llm_span(last_trace())
    assert set(span.inputs) == {"model", "messages"}
    raw = json.dumps(span.to_dict())
    for marker in ("NOT_GIVEN", "NotGiven", "Omit", "omit"):
        assert marker not in raw


def test_top_level_call_is_its_own_trace(client):
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    trace = last_trace()
    assert len(trace.data.spans) == 1
    assert trace.data.spans[0].parent_id is None
    assert trace.info.request_preview == "How much does a microwave cost?"
    assert "$100" in trace.info.response_preview


def test_tools_and_tool_calls_recorded(client):
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order #12345?"}],
        tools=[ORDER_TOOL], tool_choice="required",
    )
    span = llm_span(last_trace())
    assert span.get_attribute("mlflow.chat.tools") == [ORDER_TOOL]
    assert span.get_attribute("tool_choice") == "required"
    calls = span.outputs["choices"][0]["message"]["tool_calls"]
    assert calls[0]["function"]["name"] == "get_order_status"
    assert calls[0]["id"] == response.choices[0].message.tool_calls[0].id
    assert span.outputs["choices"][0]["finish_reason"] == "tool_calls"


def test_responses_api_span(client):
    flat_tool = {"type": "function", "name": "get_order_status", "description": "Look up an order",
                 "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}
    response = client.responses.create(model="gpt-4o-mini", input="How much does a kettle cost?",
                                       tools=[flat_tool], tool_choice="none")
    span = llm_span(last_trace())
    assert span.name == "Responses"
    assert span.inputs["input"] == "How much does a kettle cost?"
    assert span.get_attribute("input") is None
    assert span.get_attribute("mlflow.chat.tools") == [{"type": "function", "function": {
        "name": "get_order_status", "description": "Look up an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}]
    assert span.outputs["output"][0]["content"][0]["text"] == response.output_text
    usage = span.get_attribute("mlflow.chat.tokenUsage")
    assert usage == {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens,
                     "total_tokens": response.usage.total_tokens}


def test_embeddings_span(client):
    response = client.embeddings.create(model="text-embedding-3-small", input=["return policy", "kettle"])
    span = llm_span(last_trace(), SpanType.EMBEDDING)
    assert span.name == "Embeddings"
    assert span.inputs == {"model": "text-embedding-3-small", "input": ["return policy", "kettle"]}
    assert len(span.outputs["data"]) == 2
    assert span.get_attribute("mlflow.message.format") is None
    assert span.get_attribute("mlflow.chat.tokenUsage")["input_tokens"] == response.usage.prompt_tokens


def test_legacy_completion_span(client):
    client.completions.create(model="gpt-4o-mini", prompt="How much is a kettle?")
    span = llm_span(last_trace(), SpanType.LLM)
    assert span.name == "Completions"
    assert span.inputs["prompt"] == "How much is a kettle?"
    assert span.get_attribute("mlflow.message.format") == "openai"


def test_legacy_completion_stream(client):
    chunks = list(client.completions.create(model="gpt-4o-mini", prompt="How much is a kettle?", stream=True,
                                            stream_options={"include_usage": True}))
    span = llm_span(last_trace(), SpanType.LLM)
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert span.outputs["choices"][0]["text"] == text
    assert span.outputs["choices"][0]["finish_reason"] == "stop"
    assert span.get_attribute("mlflow.chat.tokenUsage")["total_tokens"] == chunks[-1].usage.total_tokens


def test_async_chat_span(server):
    async def run():
        async with async_client(server) as client:
            return await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    response = asyncio.run(run())
    span = llm_span(last_trace())
    assert span.name == "AsyncCompletions"
    assert span.outputs["choices"][0]["message"]["content"] == response.choices[0].message.content


def test_raw_response_recorded(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    span = llm_span(last_trace())
    assert span.outputs["choices"][0]["message"]["content"] == completion.choices[0].message.content
    assert "extra_headers" not in span.inputs  # the SDK's X-Stainless-Raw-Response header is not caller input


def test_raw_response_stream_recorded(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse())
    span = llm_span(last_trace())
    assert span.outputs["choices"][0]["message"]["content"] == text


def test_streaming_response_ends_without_outputs(client):
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as response:
        body = response.json()
    span = llm_span(last_trace())
    assert "$100" in body["choices"][0]["message"]["content"]
    assert span.outputs is None
    assert "with_streaming_response" in span.get_attribute("tui_eval.outputs_unavailable")


def test_parse_with_pydantic_format(client):
    class Answer(pydantic.BaseModel):
        answer: str
        topic: str

    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Answer)
    span = llm_span(last_trace())
    assert parsed.choices[0].message.parsed.topic == "prices"
    assert span.outputs["choices"][0]["message"]["parsed"] == {"answer": parsed.choices[0].message.parsed.answer,
                                                               "topic": "prices"}


def test_generator_messages_still_sent(client):
    response = client.chat.completions.create(model="gpt-4o-mini", messages=(m for m in MESSAGES))
    span = llm_span(last_trace())
    assert span.inputs["messages"] == MESSAGES
    assert "$100" in response.choices[0].message.content


# --- streams --------------------------------------------------------------------------------


def test_stream_chunks_unchanged_and_reassembled(client):
    tui_openai.autolog(disable=True)
    plain_chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                       stream_options={"include_usage": True}))
    tui_openai.autolog()
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)

    def strip_ids(chunk):
        return chunk.model_dump(exclude={"id", "created"})

    assert [strip_ids(c) for c in chunks] == [strip_ids(c) for c in plain_chunks]
    assert chunks[-1].choices == []
    span = llm_span(last_trace())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert span.outputs["choices"][0]["message"]["content"] == text
    assert span.outputs["choices"][0]["finish_reason"] == "stop"
    assert span.outputs["id"] == chunks[0].id
    usage = chunks[-1].usage
    assert span.get_attribute("mlflow.chat.tokenUsage") == {
        "input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens}
    assert [e.name for e in span.events] == [f"mlflow.chunk.item.{i}" for i in range(len(chunks))]
    assert span.get_attribute("tui_eval.stream.partial") is None


def test_stream_tool_call_reassembled(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my order #12345?"}],
                                            tools=[ORDER_TOOL], tool_choice="required", stream=True)
    list(stream)
    message = llm_span(last_trace()).outputs["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "get_order_status", "arguments": '{"order_id": "12345"}'}


def consumed_text(chunks):
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_stream_break_ends_partial(client):
    received = []
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        received.append(chunk)
        if len(received) == 3:
            break
    span = llm_span(last_trace())
    assert span.get_attribute("tui_eval.stream.partial") is True
    assert span.get_attribute("tui_eval.stream.stop_reason") == "break"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text(received)
    assert span.outputs["choices"][0]["finish_reason"] is None
    assert span.status.status_code == SpanStatusCode.OK


def test_stream_close_ends_partial(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    received = [next(stream), next(stream)]
    stream.close()
    span = llm_span(last_trace())
    assert span.get_attribute("tui_eval.stream.stop_reason") == "close"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text(received)


def test_stream_context_exit_ends_partial(client):
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        first = next(stream)
    span = llm_span(last_trace())
    assert span.get_attribute("tui_eval.stream.stop_reason") == "close"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text([first])


def test_dropped_stream_ends_span(client):
    @tracing.trace
    def app():
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        gc.collect()
        return "done"

    app()
    span = llm_span(last_trace())
    assert span.get_attribute("tui_eval.stream.stop_reason") == "dropped"
    assert span.end_time_ns <= last_trace().data.spans[0].end_time_ns
    assert span.outputs["choices"] == []


def test_async_stream_complete_and_aclose(server):
    async def run():
        async with async_client(server) as client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                          stream_options={"include_usage": True})
            full = [chunk async for chunk in stream]
            complete = last_trace()
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            first = await stream.__anext__()
            await stream.aclose()
            return full, complete, first, last_trace()

    full, complete, first, closed = asyncio.run(run())
    span = llm_span(complete)
    assert span.name == "AsyncCompletions"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text(full)
    assert span.get_attribute("mlflow.chat.tokenUsage")["total_tokens"] == full[-1].usage.total_tokens
    closed_span = llm_span(closed)
    assert closed_span.get_attribute("tui_eval.stream.stop_reason") == "aclose"
    assert closed_span.outputs["choices"][0]["message"]["content"] == consumed_text([first])


def test_async_stream_break_ends_partial(server):
    async def run():
        async with async_client(server) as client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            received = []
            async for chunk in stream:
                received.append(chunk)
                break
            # The event loop closes an abandoned async generator on its next turns.
            for _ in range(5):
                await asyncio.sleep(0)
            return received, last_trace()

    received, trace = asyncio.run(run())
    span = llm_span(trace)
    assert span.get_attribute("tui_eval.stream.stop_reason") == "break"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text(received)


def test_stream_helper_recorded(client):
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    span = llm_span(last_trace())
    assert span.outputs["choices"][0]["message"]["content"] == final.choices[0].message.content


def test_responses_stream_recorded(client):
    events = list(client.responses.create(model="gpt-4o-mini", input="How much does a kettle cost?", stream=True))
    span = llm_span(last_trace())
    final = events[-1].response
    assert span.outputs["output"][0]["content"][0]["text"] == final.output_text
    assert span.get_attribute("mlflow.chat.tokenUsage")["total_tokens"] == final.usage.total_tokens


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "type_name"),
    [
        ("429", openai.RateLimitError, "RateLimitError"),
        ("500", openai.InternalServerError, "InternalServerError"),
        ("timeout", openai.APITimeoutError, "APITimeoutError"),
        ("drop", openai.APIConnectionError, "APIConnectionError"),
    ],
)
def test_request_error_marks_span(client, fault, error, type_name):
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, timeout=0.5,
                                       extra_headers={FAULT_HEADER: fault})
    assert type(caught.value) is error
    span = llm_span(last_trace())
    assert span.status.status_code == SpanStatusCode.ERROR
    assert span.status.description.startswith(type_name)
    event = span.events[-1]
    assert event.name == "exception"
    assert event.attributes["exception.type"] == type_name
    assert event.attributes["exception.message"] == str(caught.value)
    assert span.inputs["messages"] == MESSAGES
    assert last_trace().info.state == "ERROR"


def test_error_matches_uninstrumented(client):
    tui_openai.autolog(disable=True)
    with pytest.raises(openai.RateLimitError) as plain:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "429"})
    tui_openai.autolog()
    with pytest.raises(openai.RateLimitError) as traced:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={FAULT_HEADER: "429"})
    assert str(traced.value) == str(plain.value)
    assert traced.value.status_code == plain.value.status_code == 429
    assert traced.value.body == plain.value.body


@pytest.mark.parametrize(("fault", "error"), [("drop", openai.APIConnectionError), ("stall", openai.APITimeoutError)])
def test_midstream_failure_marks_span(client, fault, error):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, timeout=0.5,
                                            extra_headers={FAULT_HEADER: fault})
    received = []
    with pytest.raises(error):
        for chunk in stream:
            received.append(chunk)
    span = llm_span(last_trace())
    assert span.status.status_code == SpanStatusCode.ERROR
    assert span.events[-1].name == "exception"
    assert span.outputs["choices"][0]["message"]["content"] == consumed_text(received)


def test_async_error_marks_span(server):
    async def run():
        async with async_client(server) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                 extra_headers={FAULT_HEADER: "500"})

    with pytest.raises(openai.InternalServerError):
        asyncio.run(run())
    span = llm_span(last_trace())
    assert span.status.status_code == SpanStatusCode.ERROR


def test_instrumentation_fault_logged_not_raised(client, monkeypatch, caplog):
    def broken_usage(outputs):
        raise RuntimeError("usage parser exploded")

    monkeypatch.setattr(recording_module, "token_usage", broken_usage)
    monkeypatch.setattr(recording_module, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="tui_eval.openai.recording"):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "$100" in response.choices[0].message.content
    assert "usage parser exploded" in caplog.text
    span = llm_span(last_trace())
    assert span.status.status_code == SpanStatusCode.OK


def test_span_start_failure_runs_untraced(client, monkeypatch, caplog):
    def broken_begin(name, span_type):
        raise RuntimeError("no spans today")

    monkeypatch.setattr(recorder, "begin_span", broken_begin)
    monkeypatch.setattr(recording_module, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="tui_eval.openai.recording"):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "$100" in response.choices[0].message.content
    assert "no spans today" in caplog.text
    assert tracing.get_last_active_trace_id() is None


# --- secrets --------------------------------------------------------------------------------

SECRETS = {
    "api_key": "sk-tuievalClientKey0123456789",
    "default_header": "hdrSecretValue98765",
    "request_header": "reqBearerToken55555",
    "query": "querySecret4242424242",
    "body": "bodySecret7777777777",
}


def test_secrets_never_stored(server, store_path):
    with LLMServer(api_key=SECRETS["api_key"]) as keyed:
        with openai.OpenAI(base_url=keyed.base_url, api_key=SECRETS["api_key"], max_retries=0,
                           default_headers={"X-Api-Key": SECRETS["default_header"]}) as client:

            @tracing.trace
            def app(question):
                return client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": question}],
                    extra_headers={"Authorization": f"Bearer {SECRETS['request_header']}"},
                    extra_query={"api_key": SECRETS["query"]},
                    extra_body={"metadata": {"client_secret": SECRETS["body"]}},
                ).choices[0].message.content

            with pytest.raises(openai.AuthenticationError):
                app("How much does a kettle cost?")  # the request header overrides the right key
            client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "user", "content": f"My key is {SECRETS['api_key']}, is that ok?"}])
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                               extra_headers={FAULT_HEADER: "500"})

    traces = tracing.search_traces(return_type="list")
    assert len(traces) == 3
    exports = [t.to_json() for t in traces]
    frame = tracing.search_traces()
    exports.append(frame.to_json())
    exports.append(frame.to_csv())
    export_dir = store_path.parent / "exports"
    for destination in ("traces.jsonl", "traces.json", "folder"):
        assert export_store(provider.get_store(), export_dir / destination) == 3
    exports.extend(path.read_text(encoding="utf-8") for path in export_dir.rglob("*") if path.is_file())
    provider.reset()  # close the store so that everything is in the files
    files = [p for p in store_path.parent.iterdir() if p.name.startswith(store_path.name)]
    assert len(exports) == 3 + 2 + 1 + 1 + 3
    raw = b"".join(p.read_bytes() for p in files)
    for name, secret in SECRETS.items():
        assert secret.encode() not in raw, f"{name} found in the store files"
        for export in exports:
            assert secret not in export, f"{name} found in an export"
    assert b"[REDACTED]" in raw


# --- patching -------------------------------------------------------------------------------


def test_autolog_twice_wraps_once(client):
    tui_openai.autolog()
    tui_openai.autolog()
    original = getattr(Completions.__dict__["create"], ORIGINAL_ATTRIBUTE)
    assert getattr(original, ORIGINAL_ATTRIBUTE, None) is None

    @tracing.trace
    def app():
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    app()
    assert len(last_trace().search_spans(span_type=SpanType.CHAT_MODEL)) == 1


def test_disable_restores_sdk(client):
    patched = Completions.__dict__["create"]
    original = getattr(patched, ORIGINAL_ATTRIBUTE)
    async_original = getattr(AsyncCompletions.__dict__["create"], ORIGINAL_ATTRIBUTE)
    tui_openai.autolog(disable=True)
    assert Completions.__dict__["create"] is original
    assert AsyncCompletions.__dict__["create"] is async_original
    assert not tui_openai.is_enabled()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert tracing.get_last_active_trace_id() is None


def test_tracing_disabled_records_nothing(client):
    with provider.tracing_disabled():
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert tracing.get_last_active_trace_id() is None
