"""Request validation and response bodies of the local server, in the OpenAI API's JSON shapes.

Everything here is a pure function of the request body (plus ids and timestamps), so the
HTTP layer in server.py only routes, applies latency and faults, and writes bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import struct
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui_eval.llm_server.assistant import Reply, reply_to
from tui_eval.llm_server.tokenizer import (
    content_text,
    count_message_tokens,
    count_tokens,
    stream_pieces,
    tokenize,
    truncate_to_tokens,
)

CHAT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "tui-eval-support-1")
EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "tui-eval-embed-1")
# Embedding width when the request gives no `dimensions`; smaller than OpenAI's 1536 to keep
# responses light, and any width up to MAX_EMBEDDING_DIMENSIONS can be requested.
DEFAULT_EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 3072
MAX_CHOICES = 8
SYSTEM_FINGERPRINT = "fp_tui_eval"


class RequestError(Exception):
    """A request the server rejects, with the HTTP status and OpenAI error fields to send."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 error_type: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.error_type = error_type
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(str(self), error_type=self.error_type, param=self.param, code=self.code)


def error_body(message: str, *, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """Return an OpenAI-style error body."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


@dataclass(frozen=True)
class Choice:
    """One generated choice after truncation: text or a tool call, and why generation stopped."""

    index: int
    reply: Reply
    content: str | None
    finish_reason: str
    completion_tokens: int


# --- chat completions ---------------------------------------------------------------------


def validate_chat_request(body: Any) -> None:
    """Raise RequestError when a chat completion request body is unusable."""
    if not isinstance(body, Mapping):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("Missing required parameter: 'model'.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array of message objects.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise RequestError(f"Invalid message at messages[{index}]: it needs a 'role' string.",
                               param=f"messages[{index}]")
    _choice_count(body)


def chat_choices(body: Mapping[str, Any]) -> list[Choice]:
    """Generate the choices of a chat completion request."""
    messages = body["messages"]
    tools = body.get("tools") if isinstance(body.get("tools"), list) else None
    choices = []
    for index in range(_choice_count(body)):
        reply = reply_to(
            messages,
            model=body["model"],
            seed=body.get("seed"),
            tools=tools,
            tool_choice=body.get("tool_choice"),
            choice_index=index,
        )
        choices.append(_finish_choice(index, reply, body))
    return choices


def chat_usage(body: Mapping[str, Any], choices: Sequence[Choice]) -> dict[str, Any]:
    """Return the usage block: prompt tokens (tools included) and the choices' tokens."""
    prompt = count_message_tokens(body["messages"])
    if isinstance(body.get("tools"), list):
        prompt += count_tokens(json.dumps(body["tools"], sort_keys=True))
    completion = sum(choice.completion_tokens for choice in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def chat_completion(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the `chat.completion` object for a non-streamed request."""
    choices = chat_choices(body)
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": choice.index,
                "message": _chat_message(choice),
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for choice in choices
        ],
        "usage": chat_usage(body, choices),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_completion_chunks(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the `chat.completion.chunk` objects of a streamed request.

    With `stream_options.include_usage`, every chunk carries `"usage": null` and one last
    chunk with empty `choices` carries the usage, as the OpenAI API does.
    """
    choices = chat_choices(body)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    completion_id = new_id("chatcmpl-")
    created = int(time.time())

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body["model"],
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            payload["usage"] = None
        return payload

    for choice in choices:
        call = choice.reply.tool_call
        if call is not None:
            yield chunk(choice.index, {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"index": 0, "id": call.call_id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}}],
            })
            for piece in stream_pieces(call.arguments):
                yield chunk(choice.index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            yield chunk(choice.index, {"role": "assistant", "content": "", "refusal": None})
            for piece in stream_pieces(choice.content or ""):
                yield chunk(choice.index, {"content": piece})
        yield chunk(choice.index, {}, choice.finish_reason)

    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body["model"],
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": chat_usage(body, choices),
        }


# --- legacy completions -------------------------------------------------------------------


def validate_completion_request(body: Any) -> None:
    """Raise RequestError when a legacy completion request body is unusable."""
    if not isinstance(body, Mapping):
        raise RequestError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body.get("model"):
        raise RequestError("Missing required parameter: 'model'.", param="model")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (isinstance(prompt, list) and all(isinstance(p, str) for p in prompt)):
        raise RequestError("'prompt' must be a string or an array of strings.", param="prompt")
    _choice_count(body)


def completion_choices(body: Mapping[str, Any]) -> tuple[list[Choice], int]:
    """Generate legacy completion choices; return them with the prompt's token count."""
    prompts = [body["prompt"]] if isinstance(body["prompt"], str) else list(body["prompt"])
    choices: list[Choice] = []
    prompt_tokens = 0
    index = 0
    for prompt in prompts:
        prompt_tokens += count_tokens(prompt)
        for variant in range(_choice_count(body)):
            reply = reply_to([{"role": "user", "content": prompt}], model=body["model"],
                             seed=body.get("seed"), choice_index=variant)
            choices.append(_finish_choice(index, reply, body))
            index += 1
    return choices, prompt_tokens


def text_completion(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return the `text_completion` object for a non-streamed legacy request."""
    choices, prompt_tokens = completion_choices(body)
    completion_tokens = sum(c.completion_tokens for c in choices)
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"text": c.content or "", "index": c.index, "logprobs": None, "finish_reason": c.finish_reason}
            for c in choices
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def text_completion_chunks(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the chunks of a streamed legacy completion."""
    choices, prompt_tokens = completion_choices(body)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    completion_id = new_id("cmpl-")
    created = int(time.time())
    for c in choices:
        pieces = stream_pieces(c.content or "") or [""]
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": body["model"],
                "choices": [{"text": piece, "index": c.index, "logprobs": None,
                             "finish_reason": c.finish_reason if last else None}],
            }
            if include_usage:
                payload["usage"] = None
            yield payload
    if include_usage:
        completion_tokens = sum(c.completion_tokens for c in choices)
        yield {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": body["model"],
            "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


# --- embeddings ---------------------------------------------------------------------------


def embeddings(body: Any) -> dict[str, Any]:
    """Return the embeddings list for a request, validating it first.

    A vector is the normalised sum of one pseudo-random vector per lower-cased token (feature
    hashing), so equal texts get equal vectors and texts sharing words point the same way.
    """
    if not isinstance(body, Mapping):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("Missing required parameter: 'model'.", param="model")
    texts = _embedding_inputs(body.get("input"))
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise RequestError(f"'dimensions' must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}, "
                           f"got {dimensions!r}.", param="dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise RequestError(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}.",
                           param="encoding_format")

    data = []
    prompt_tokens = 0
    for index, text in enumerate(texts):
        prompt_tokens += max(1, count_tokens(text))
        vector = embed_text(text, dimensions)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def embed_text(text: str, dimensions: int) -> list[float]:
    """Return the unit-length embedding of text."""
    total = [0.0] * dimensions
    tokens = [t.lower() for t in tokenize(text)] or [text]
    for token in tokens:
        for position, value in enumerate(_token_vector(token, dimensions)):
            total[position] += value
    norm = sum(v * v for v in total) ** 0.5 or 1.0
    return [v / norm for v in total]


@functools.lru_cache(maxsize=4096)
def _token_vector(token: str, dimensions: int) -> tuple[float, ...]:
    seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "big")
    generator = random.Random(seed)
    return tuple(generator.uniform(-1.0, 1.0) for _ in range(dimensions))


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        if not value:
            raise RequestError("'input' cannot be an empty string.", param="input")
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            if any(not item for item in value):
                raise RequestError("'input' cannot contain an empty string.", param="input")
            return list(value)
        if all(isinstance(item, int) for item in value):
            return [" ".join(str(i) for i in value)]
        if all(isinstance(item, list) and all(isinstance(i, int) for i in item) for item in value):
            return [" ".join(str(i) for i in item) for item in value]
    raise RequestError("'input' must be a string, an array of strings, or token arrays.", param="input")


# --- responses ----------------------------------------------------------------------------


def responses_messages(body: Any) -> list[dict[str, Any]]:
    """Validate a Responses API request and turn its `instructions` and `input` into chat messages."""
    if not isinstance(body, Mapping):
        raise RequestError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body.get("model"):
        raise RequestError("Missing required parameter: 'model'.", param="model")
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    value = body.get("input")
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise RequestError(f"Invalid item at input[{index}]: expected an object.", param=f"input[{index}]")
            if item.get("type") == "function_call_output":
                messages.append({"role": "tool", "content": content_text(item.get("output"))})
            elif item.get("type") == "function_call":
                messages.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": item.get("call_id"), "type": "function",
                     "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}]})
            elif isinstance(item.get("role"), str):
                messages.append({"role": item["role"], "content": content_text(item.get("content"))})
            else:
                raise RequestError(f"Invalid item at input[{index}]: it needs a 'role' or a known 'type'.",
                                   param=f"input[{index}]")
    else:
        raise RequestError("'input' must be a string or a non-empty array of input items.", param="input")
    return messages


def response_object(body: Mapping[str, Any], *, status: str = "completed",
                    messages: list[dict[str, Any]] | None = None,
                    response_id: str | None = None, created_at: int | None = None) -> dict[str, Any]:
    """Return the `response` object of a Responses API request."""
    messages = messages if messages is not None else responses_messages(body)
    tools = [_chat_style_tool(t) for t in body.get("tools") or [] if isinstance(t, Mapping)]
    reply = reply_to(messages, model=body["model"], seed=body.get("seed"),
                     tools=tools or None, tool_choice=body.get("tool_choice"))
    limit = body.get("max_output_tokens")
    choice = _finish_choice(0, reply, {"max_tokens": limit} if isinstance(limit, int) else {})
    incomplete = choice.finish_reason == "length"
    output = [] if status != "completed" else [_response_output_item(choice)]
    input_tokens = count_message_tokens(messages)
    return {
        "id": response_id or new_id("resp_"),
        "object": "response",
        "created_at": created_at or int(time.time()),
        "status": ("incomplete" if incomplete else "completed") if status == "completed" else status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete and status == "completed" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": limit,
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": list(body.get("tools") or []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
        "usage": None if status != "completed" else {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": choice.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + choice.completion_tokens,
        },
    }


def response_events(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the server-sent events of a streamed Responses API request, each with its `type`."""
    messages = responses_messages(body)
    response_id = new_id("resp_")
    created_at = int(time.time())
    final = response_object(body, messages=messages, response_id=response_id, created_at=created_at)
    pending = response_object(body, status="in_progress", messages=messages,
                              response_id=response_id, created_at=created_at)
    item = final["output"][0]
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    if item["type"] == "function_call":
        yield event("response.output_item.added", output_index=0, item={**item, "arguments": "", "status": "in_progress"})
        for piece in stream_pieces(item["arguments"]):
            yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=piece)
        yield event("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                    arguments=item["arguments"])
    else:
        text = item["content"][0]["text"]
        yield event("response.output_item.added", output_index=0,
                    item={**item, "status": "in_progress", "content": []})
        yield event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
                    part={"type": "output_text", "text": "", "annotations": []})
        for piece in stream_pieces(text):
            yield event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0,
                        delta=piece, logprobs=[])
        yield event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                    text=text, logprobs=[])
        yield event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                    part=item["content"][0])
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)


def _response_output_item(choice: Choice) -> dict[str, Any]:
    call = choice.reply.tool_call
    if call is not None:
        return {"type": "function_call", "id": new_id("fc_"), "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments, "status": "completed"}
    return {
        "type": "message",
        "id": new_id("msg_"),
        "status": "completed" if choice.finish_reason != "length" else "incomplete",
        "role": "assistant",
        "content": [{"type": "output_text", "text": choice.content or "", "annotations": []}],
    }


def _chat_style_tool(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """Turn a Responses API function tool into the chat API's `{"function": {...}}` form."""
    if isinstance(tool.get("function"), Mapping):
        return tool
    return {"type": "function", "function": {"name": tool.get("name"), "description": tool.get("description"),
                                             "parameters": tool.get("parameters")}}


# --- models -------------------------------------------------------------------------------


def model_object(model_id: str) -> dict[str, Any]:
    """Return a `model` object."""
    return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "tui-eval"}


def models_list() -> dict[str, Any]:
    """Return the `/v1/models` list."""
    return {"object": "list", "data": [model_object(m) for m in CHAT_MODELS + EMBEDDING_MODELS]}


# --- shared helpers -----------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """Return a fresh id with an OpenAI-style prefix."""
    return prefix + uuid.uuid4().hex[:24]


def _choice_count(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        raise RequestError(f"'n' must be an integer from 1 to {MAX_CHOICES}, got {n!r}.", param="n")
    return n


def _finish_choice(index: int, reply: Reply, body: Mapping[str, Any]) -> Choice:
    """Apply response_format, stop sequences and the token limit to a reply."""
    if reply.tool_call is not None:
        call = reply.tool_call
        return Choice(index, reply, None, "tool_calls", count_tokens(call.name) + count_tokens(call.arguments))

    content = reply.content or ""
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema"):
        content = json.dumps({"answer": content, "topic": reply.topic}, ensure_ascii=False)

    finish_reason = "stop"
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
    cut_at = min((content.find(s) for s in stops if s and s in content), default=-1)
    if cut_at >= 0:
        content = content[:cut_at]

    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool):
        content, was_cut = truncate_to_tokens(content, limit)
        if was_cut:
            finish_reason = "length"
    return Choice(index, reply, content, finish_reason, count_tokens(content))


def _chat_message(choice: Choice) -> dict[str, Any]:
    call = choice.reply.tool_call
    message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None,
                               "annotations": []}
    if call is not None:
        message["tool_calls"] = [{"id": call.call_id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments}}]
    return message
