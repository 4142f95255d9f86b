"""The trace decorator and start_span: span shape, nesting, context propagation and errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import logging
import textwrap
import threading

import pytest

import tui_eval.tracing as tracing
from tui_eval.entities import LiveSpan, SpanStatusCode, SpanType, TraceState
from tui_eval.errors import InvalidParameterError
from tui_eval.tracing import provider, recorder
from tui_eval.tracing.recorder import NoOpSpan, TracedSpan


@pytest.fixture(autouse=True)
def store_path(tmp_path):
    path = tmp_path / "traces.db"
    provider.reset()
    recorder.clear()
    tracing.set_tracking_uri(path)
    yield path
    provider.reset()
    recorder.clear()


def last_trace():
    trace_id = tracing.get_last_active_trace_id()
    assert trace_id is not None, "no trace finished"
    trace = tracing.get_trace(trace_id)
    assert trace is not None
    return trace


def span_named(trace, name):
    found = trace.search_spans(name=name)
    assert len(found) == 1, f"expected one span {name!r}, found {[s.name for s in trace.data.spans]}"
    return found[0]


# --- decorator forms ----------------------------------------------------------------------


def test_bare_decorator_records_bound_inputs_with_defaults():
    @tracing.trace
    def add(a, b=2, *, scale=1):
        return (a + b) * scale

    assert add(1) == 3
    span = last_trace().data.spans[0]
    assert span.name == "add"
    assert span.inputs == {"a": 1, "b": 2, "scale": 1}
    assert span.outputs == 3
    assert span.span_type == SpanType.UNKNOWN
    assert span.get_attribute("mlflow.spanFunctionName") == "add"
    assert span.parent_id is None
    assert span.status.status_code == SpanStatusCode.OK


def test_decorator_arguments_set_name_type_and_attributes():
    @tracing.trace(name="retrieve", span_type=SpanType.RETRIEVER, attributes={"k": 3, "index": "docs"})
    def search(query):
        return [{"page_content": query}]

    search("kettle")
    span = last_trace().data.spans[0]
    assert span.name == "retrieve"
    assert span.span_type == "RETRIEVER"
    assert span.get_attribute("k") == 3
    assert span.get_attribute("index") == "docs"
    assert span.get_attribute("mlflow.spanFunctionName") == "search"


def test_keyword_call_keeps_parameter_order():
    @tracing.trace
    def f(a, b=1, c=2):
        return a

    f(c=5, a=0)
    raw = last_trace().data.spans[0].raw_attributes["mlflow.spanInputs"]
    assert raw == '{"a": 0, "b": 1, "c": 5}'


def test_var_positional_and_var_keyword_are_named():
    @tracing.trace
    def f(first, *rest, flag=False, **options):
        return len(rest)

    f(1, 2, 3, flag=True, color="red")
    assert last_trace().data.spans[0].inputs == {
        "first": 1,
        "rest": [2, 3],
        "flag": True,
        "options": {"color": "red"},
    }


def test_invalid_call_records_type_error_with_no_inputs():
    @tracing.trace
    def f(a):
        return a

    with pytest.raises(TypeError):
        f(1, 2)
    span = last_trace().data.spans[0]
    assert span.inputs is None
    assert span.status.status_code == SpanStatusCode.ERROR


def test_wrapper_keeps_function_metadata():
    def documented(x):
        """Double x."""
        return 2 * x

    wrapped = tracing.trace(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__doc__ == "Double x."
    assert wrapped.__wrapped__ is documented


class Service:
    factor = 10

    @tracing.trace
    def method(self, x):
        return x * self.factor

    @tracing.trace
    @classmethod
    def class_first(cls, x=1):
        return x * cls.factor

    @classmethod
    @tracing.trace
    def class_second(cls, x=1):
        return x + cls.factor

    @tracing.trace
    @staticmethod
    def static_first(x):
        return -x

    @staticmethod
    @tracing.trace
    def static_second(x):
        return x - 1


@pytest.mark.parametrize(
    ("call", "name", "inputs", "outputs"),
    [
        (lambda: Service().method(2), "method", {"x": 2}, 20),
        (lambda: Service.class_first(), "class_first", {"x": 1}, 10),
        (lambda: Service().class_first(3), "class_first", {"x": 3}, 30),
        (lambda: Service.class_second(2), "class_second", {"x": 2}, 12),
        (lambda: Service.static_first(4), "static_first", {"x": 4}, -4),
        (lambda: Service().static_second(4), "static_second", {"x": 4}, 3),
    ],
)
def test_methods_drop_self_and_cls(call, name, inputs, outputs):
    assert call() == outputs
    span = last_trace().data.spans[0]
    assert span.name == name
    assert span.inputs == inputs
    assert span.outputs == outputs


def test_parameter_named_cls_holding_a_value_is_kept():
    @tracing.trace
    def label(cls, n):
        return f"{cls}-{n}"

    label("shirt", 2)
    assert last_trace().data.spans[0].inputs == {"cls": "shirt", "n": 2}


def test_third_party_function_wrapped_at_call_time():
    assert tracing.trace(textwrap.shorten)("hello big world", width=12) == "hello [...]"
    span = last_trace().data.spans[0]
    assert span.name == "shorten"
    assert span.inputs["text"] == "hello big world"
    assert span.inputs["width"] == 12


def test_builtin_without_signature_records_args_and_kwargs():
    assert tracing.trace(max)(3, 7, key=abs) == 7
    span = last_trace().data.spans[0]
    assert span.inputs["args"] == [3, 7]
    assert span.inputs["kwargs"] == {"key": "<built-in function abs>"}


def test_callable_object_is_traced_under_its_class_name():
    class Scorer:
        def __call__(self, text):
            return len(text)

    assert tracing.trace(Scorer())("abcd") == 4
    span = last_trace().data.spans[0]
    assert span.name == "Scorer"
    assert span.inputs == {"text": "abcd"}


def test_output_reducer_on_plain_function_is_rejected():
    with pytest.raises(InvalidParameterError, match="not a generator"):
        tracing.trace(output_reducer=list)(lambda: 1)


def test_non_callable_is_rejected():
    with pytest.raises(InvalidParameterError, match="callable"):
        tracing.trace(42)


# --- nesting ------------------------------------------------------------------------------


def test_nested_calls_form_a_tree():
    @tracing.trace
    def leaf(i):
        return i

    @tracing.trace
    def middle():
        return leaf(1) + leaf(2)

    @tracing.trace(span_type=SpanType.CHAIN)
    def root():
        with tracing.start_span("manual") as span:
            span.set_inputs({"q": "x"})
            span.set_outputs("y")
        return middle()

    assert root() == 3
    trace = last_trace()
    names = [span.name for span in trace.data.spans]
    assert names == ["root", "manual", "middle", "leaf", "leaf"]
    root_span, manual, middle_span, leaf_a, leaf_b = trace.data.spans
    assert manual.parent_id == root_span.span_id
    assert middle_span.parent_id == root_span.span_id
    assert leaf_a.parent_id == middle_span.span_id
    assert leaf_b.parent_id == middle_span.span_id
    assert manual.inputs == {"q": "x"}
    assert manual.outputs == "y"
    assert {span.trace_id for span in trace.data.spans} == {trace.info.trace_id}


def test_recursive_function_nests():
    @tracing.trace
    def countdown(n):
        return 0 if n == 0 else countdown(n - 1)

    countdown(3)
    spans = last_trace().data.spans
    assert len(spans) == 4
    for parent, child in zip(spans, spans[1:]):
        assert child.parent_id == parent.span_id


def test_sequential_roots_are_separate_traces():
    @tracing.trace
    def f(x):
        return x

    f(1)
    first = tracing.get_last_active_trace_id()
    f(2)
    second = tracing.get_last_active_trace_id()
    assert first != second
    assert first.startswith("tr-")
    assert len(first) == 35


def test_current_active_span_inside_and_outside():
    seen = {}

    @tracing.trace
    def f():
        seen["span"] = tracing.get_current_active_span()
        seen["trace_id"] = tracing.get_active_trace_id()

    assert tracing.get_current_active_span() is None
    f()
    assert isinstance(seen["span"], LiveSpan)
    assert seen["span"].name == "f"
    assert seen["trace_id"] == tracing.get_last_active_trace_id()
    assert tracing.get_current_active_span() is None
    assert tracing.get_active_trace_id() is None


# --- exceptions ---------------------------------------------------------------------------


class AppError(Exception):
    pass


def test_exception_is_reraised_unchanged_and_recorded():
    error = AppError("order BAD not found")

    @tracing.trace
    def lookup(order_id):
        raise error

    with pytest.raises(AppError) as caught:
        lookup("BAD")
    assert caught.value is error
    trace = last_trace()
    span = trace.data.spans[0]
    assert span.status.status_code == SpanStatusCode.ERROR
    assert span.status.description == "AppError: order BAD not found"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "AppError"
    assert event.attributes["exception.message"] == "order BAD not found"
    assert "raise error" in event.attributes["exception.stacktrace"]
    assert trace.info.state == TraceState.ERROR


def test_exception_caught_by_parent_leaves_root_ok():
    @tracing.trace
    def tool():
        raise KeyError("missing")

    @tracing.trace
    def agent():
        try:
            tool()
        except KeyError:
            return "recovered"

    assert agent() == "recovered"
    trace = last_trace()
    assert trace.info.state == TraceState.OK
    tool_span = span_named(trace, "tool")
    assert tool_span.status.description == "KeyError: 'missing'"


def test_start_span_records_exception_and_reraises():
    error = RuntimeError("boom")
    with pytest.raises(RuntimeError) as caught:
        with tracing.start_span("block", span_type=SpanType.TOOL, attributes={"a": 1}) as span:
            span.set_inputs("in")
            raise error
    assert caught.value is error
    stored = last_trace().data.spans[0]
    assert stored.name == "block"
    assert stored.span_type == "TOOL"
    assert stored.get_attribute("a") == 1
    assert stored.status.description == "RuntimeError: boom"
    assert stored.events[0].attributes["exception.type"] == "RuntimeError"


def test_exception_with_unprintable_message_is_recorded():
    class Unprintable(Exception):
        def __str__(self):
            raise ValueError("no text")

    error = Unprintable()

    @tracing.trace
    def f():
        raise error

    with pytest.raises(Unprintable) as caught:
        f()
    assert caught.value is error
    span = last_trace().data.spans[0]
    assert span.status.status_code == SpanStatusCode.ERROR
    assert "Unprintable" in span.status.description


def test_keyboard_interrupt_is_recorded_and_propagates():
    @tracing.trace
    def f():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        f()
    assert last_trace().info.state == TraceState.ERROR


# --- generators ---------------------------------------------------------------------------


def test_generator_records_chunks_and_outputs():
    @tracing.trace
    def stream(n):
        for i in range(n):
            yield {"delta": i}

    assert list(stream(3)) == [{"delta": 0}, {"delta": 1}, {"delta": 2}]
    span = last_trace().data.spans[0]
    assert [event.name for event in span.events] == [
        "mlflow.chunk.item.0",
        "mlflow.chunk.item.1",
        "mlflow.chunk.item.2",
    ]
    assert json.loads(span.events[1].attributes["mlflow.chunk.value"]) == {"delta": 1}
    assert span.outputs == [{"delta": 0}, {"delta": 1}, {"delta": 2}]
    assert span.inputs == {"n": 3}


def test_generator_output_reducer():
    @tracing.trace(output_reducer="".join)
    def words():
        yield "a"
        yield "b"

    assert list(words()) == ["a", "b"]
    assert last_trace().data.spans[0].outputs == "ab"


def test_failing_output_reducer_keeps_chunks(caplog):
    def reducer(chunks):
        raise ValueError("cannot reduce")

    @tracing.trace(output_reducer=reducer)
    def words():
        yield "a"

    with caplog.at_level(logging.WARNING):
        assert list(words()) == ["a"]
    assert last_trace().data.spans[0].outputs == ["a"]
    assert "output_reducer" in caplog.text


def test_generator_not_iterated_records_nothing():
    @tracing.trace
    def stream():
        yield 1

    stream()
    assert tracing.get_last_active_trace_id() is None


def test_generator_closed_early_ends_span():
    @tracing.trace
    def stream():
        for i in range(100):
            yield i

    for value in stream():
        if value == 1:
            break
    span = last_trace().data.spans[0]
    assert span.outputs == [0, 1]
    assert span.status.status_code == SpanStatusCode.OK


def test_generator_error_midway():
    @tracing.trace
    def stream():
        yield 1
        raise ValueError("stream broke")

    with pytest.raises(ValueError, match="stream broke"):
        list(stream())
    span = last_trace().data.spans[0]
    assert span.status.description == "ValueError: stream broke"
    assert [event.name for event in span.events] == ["mlflow.chunk.item.0", "exception"]


def test_generator_send_and_return_value_pass_through():
    @tracing.trace
    def echo():
        received = yield "ready"
        yield f"got {received}"
        return "done"

    def drive():
        generator = echo()
        first = next(generator)
        second = generator.send("x")
        try:
            next(generator)
        except StopIteration as stop:
            return first, second, stop.value

    assert drive() == ("ready", "got x", "done")


def test_generator_throw_reaches_inner_generator():
    @tracing.trace
    def guarded():
        try:
            yield 1
        except ValueError:
            yield "handled"

    generator = guarded()
    assert next(generator) == 1
    assert generator.throw(ValueError("x")) == "handled"
    generator.close()


def test_consumer_spans_are_siblings_of_generator_span():
    @tracing.trace
    def stream():
        yield 1
        yield 2

    @tracing.trace
    def consume(x):
        return x

    @tracing.trace
    def root():
        return [consume(x) for x in stream()]

    root()
    trace = last_trace()
    root_span = trace.data.spans[0]
    for span in trace.data.spans[1:]:
        assert span.parent_id == root_span.span_id, span.name


def test_spans_inside_generator_are_its_children():
    @tracing.trace
    def step(i):
        return i

    @tracing.trace
    def stream():
        yield step(1)
        yield step(2)

    list(stream())
    trace = last_trace()
    generator_span = span_named(trace, "stream")
    for span in trace.search_spans(name="step"):
        assert span.parent_id == generator_span.span_id


# --- async --------------------------------------------------------------------------------


def test_async_function_and_tasks_nest_under_root():
    @tracing.trace
    async def fetch(i):
        await asyncio.sleep(0.001 * (3 - i))
        return i * 10

    @tracing.trace
    async def root():
        return await asyncio.gather(*(fetch(i) for i in range(3)))

    assert asyncio.run(root()) == [0, 10, 20]
    trace = last_trace()
    root_span = trace.data.spans[0]
    fetches = trace.search_spans(name="fetch")
    assert len(fetches) == 3
    assert all(span.parent_id == root_span.span_id for span in fetches)
    assert sorted(span.outputs for span in fetches) == [0, 10, 20]


def test_async_task_created_inside_start_span_is_child():
    @tracing.trace
    async def work():
        return "w"

    async def main():
        with tracing.start_span("outer"):
            task = asyncio.create_task(work())
            return await task

    assert asyncio.run(main()) == "w"
    trace = last_trace()
    assert [span.name for span in trace.data.spans] == ["outer", "work"]
    assert trace.data.spans[1].parent_id == trace.data.spans[0].span_id


def test_async_exception_is_reraised_unchanged():
    error = ConnectionError("upstream")

    @tracing.trace
    async def call():
        raise error

    async def main():
        try:
            await call()
        except ConnectionError as caught:
            return caught

    assert asyncio.run(main()) is error
    assert last_trace().data.spans[0].status.description == "ConnectionError: upstream"


def test_async_generator_records_chunks():
    @tracing.trace(output_reducer=lambda chunks: sum(chunks))
    async def numbers():
        for i in range(4):
            await asyncio.sleep(0)
            yield i

    async def main():
        return [value async for value in numbers()]

    assert asyncio.run(main()) == [0, 1, 2, 3]
    span = last_trace().data.spans[0]
    assert span.outputs == 6
    assert len(span.events) == 4


def test_async_generator_closed_early():
    @tracing.trace
    async def numbers():
        for i in range(100):
            yield i

    async def main():
        generator = numbers()
        async for value in generator:
            if value == 2:
                break
        await generator.aclose()

    asyncio.run(main())
    assert last_trace().data.spans[0].outputs == [0, 1, 2]


# --- threads ------------------------------------------------------------------------------


def test_thread_with_copied_context_is_child():
    @tracing.trace
    def work(i):
        return i

    @tracing.trace
    def root():
        threads = []
        for i in range(3):
            context = contextvars.copy_context()
            thread = threading.Thread(target=context.run, args=(work, i))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    root()
    trace = last_trace()
    root_span = trace.data.spans[0]
    works = trace.search_spans(name="work")
    assert len(works) == 3
    assert all(span.parent_id == root_span.span_id for span in works)


def test_thread_pool_with_copied_context():
    @tracing.trace
    def work(i):
        return i * i

    @tracing.trace
    def root():
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(8)]
            return sorted(future.result() for future in futures)

    assert root() == [0, 1, 4, 9, 16, 25, 36, 49]
    trace = last_trace()
    assert len(trace.search_spans(name="work")) == 8


def test_thread_without_copied_context_starts_its_own_trace():
    results = {}

    @tracing.trace
    def work():
        results["trace_id"] = tracing.get_active_trace_id()

    @tracing.trace
    def root():
        results["root"] = tracing.get_active_trace_id()
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    root()
    assert results["trace_id"] != results["root"]
    assert tracing.get_trace(results["trace_id"]) is not None


def test_last_active_trace_id_per_thread():
    @tracing.trace
    def work():
        return 1

    main_ids = []
    work()
    main_ids.append(tracing.get_last_active_trace_id(thread_local=True))
    other = {}

    def in_thread():
        other["before"] = tracing.get_last_active_trace_id(thread_local=True)
        work()
        other["after"] = tracing.get_last_active_trace_id(thread_local=True)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other["before"] is None
    assert other["after"] not in (None, main_ids[0])
    assert tracing.get_last_active_trace_id(thread_local=True) == main_ids[0]
    assert tracing.get_last_active_trace_id() == other["after"]


# --- spans outliving their root -----------------------------------------------------------


def test_span_ending_after_root_is_left_out(caplog):
    release = threading.Event()
    finished = threading.Event()

    @tracing.trace
    def slow():
        release.wait(5)
        return "late"

    def run_slow(context):
        context.run(slow)
        finished.set()

    @tracing.trace
    def root():
        context = contextvars.copy_context()
        threading.Thread(target=run_slow, args=(context,)).start()
        return "root done"

    with caplog.at_level(logging.WARNING):
        root()
        trace = last_trace()
        release.set()
        assert finished.wait(5)
    slow_span = span_named(trace, "slow")
    assert slow_span.status.status_code == SpanStatusCode.UNSET
    assert slow_span.end_time_ns == trace.data.spans[0].end_time_ns
    assert "still open" in caplog.text
    assert "ended after the root span" in caplog.text
    stored = tracing.get_trace(trace.info.trace_id)
    assert span_named(stored, "slow").outputs is None


def test_span_started_after_root_ended_is_not_stored(caplog):
    holder = {}

    @tracing.trace
    def root():
        holder["context"] = contextvars.copy_context()

    @tracing.trace
    def late():
        return 1

    root()
    trace_id = tracing.get_last_active_trace_id()
    with caplog.at_level(logging.WARNING):
        assert holder["context"].run(late) == 1
    assert "started after the root ended" in caplog.text
    assert [span.name for span in tracing.get_trace(trace_id).data.spans] == ["root"]


# --- switching tracing off ----------------------------------------------------------------


def test_tracing_disabled_runs_code_without_recording():
    calls = []

    @tracing.trace
    def f(x):
        calls.append(x)
        return x

    with provider.tracing_disabled():
        assert f(5) == 5
        with tracing.start_span("ignored") as span:
            span.set_inputs({"a": 1})
            span.set_attribute("k", "v")
            span.end()
        assert isinstance(span, NoOpSpan)
        assert list(tracing.trace(lambda: iter([1]))()) == [1]
    assert calls == [5]
    assert tracing.get_last_active_trace_id() is None
    assert provider.is_tracing_enabled()


def test_disabled_generator_still_yields():
    @tracing.trace
    def stream():
        yield from (1, 2)

    async def astream_main():
        @tracing.trace
        async def astream():
            yield 3

        return [x async for x in astream()]

    with provider.tracing_disabled():
        assert list(stream()) == [1, 2]
        assert asyncio.run(astream_main()) == [3]
    assert tracing.get_last_active_trace_id() is None


# --- the span class -----------------------------------------------------------------------


def _all_slots(cls):
    return {slot for klass in cls.__mro__ for slot in getattr(klass, "__slots__", ())}


def test_traced_span_sets_every_live_span_slot():
    # TracedSpan builds itself without LiveSpan.__init__ for speed; a slot added to Span
    # or LiveSpan must be set there too.
    reference = LiveSpan(trace_id="tr-" + "0" * 32, name="reference")
    with tracing.start_span("probe") as span:
        pass
    assert isinstance(span, TracedSpan)
    for slot in _all_slots(LiveSpan):
        assert hasattr(reference, slot), slot
        assert hasattr(span, slot), f"TracedSpan leaves {slot!r} unset"
    assert span.raw_attributes.keys() >= reference.raw_attributes.keys()
    assert span.to_dict().keys() == reference.to_dict().keys()


def test_span_ids_are_unique_hex():
    with tracing.start_span("root"):
        for _ in range(200):
            with tracing.start_span("child"):
                pass
    spans = last_trace().data.spans
    ids = {span.span_id for span in spans}
    assert len(ids) == 201
    assert all(len(span_id) == 16 and int(span_id, 16) for span_id in ids)


def test_ids_whose_base64_starts_with_0x_are_redrawn(monkeypatch):
    # Base64 "0x..." ids are misread as hex by the span dict reader, so tracing never makes one.
    bad_span = 0b110100_110001 << 52
    bad_trace = 0b110100_010111 << 116
    draws = iter([0, bad_span, 7, bad_trace, 9])
    monkeypatch.setattr(recorder, "_getrandbits", lambda bits: next(draws))
    assert recorder._new_span_id() == "%016x" % 7
    assert recorder._new_trace_id() == "tr-" + "%032x" % 9


def test_package_reexports_tracing_api():
    import tui_eval

    for name in tui_eval._TRACING_NAMES:
        assert getattr(tui_eval, name) is getattr(tracing, name), name
    assert set(tui_eval._TRACING_NAMES) <= set(dir(tui_eval))
