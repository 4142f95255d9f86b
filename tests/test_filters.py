"""The filter_string and order_by grammar: parsing, validation, SQL compilation and semantics."""

from __future__ import annotations

import pytest

from tui_eval.errors import FilterError
from tui_eval.store import Store
from tui_eval.store.filters import (
    ATTRIBUTE,
    EXPECTATION,
    FEEDBACK,
    METADATA,
    SPAN,
    TAG,
    compile_filter,
    compile_order_by,
    like_to_glob,
    parse_filter,
)
from tui_eval.entities import Expectation, Feedback
from tui_eval.entities.trace_state import TraceState

from test_store_helpers import make_trace

# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entity", "key", "comparator", "value"),
    [
        ("status = 'OK'", ATTRIBUTE, "status", "=", "OK"),
        ("attributes.status = 'OK'", ATTRIBUTE, "status", "=", "OK"),
        ("attribute.status != 'OK'", ATTRIBUTE, "status", "!=", "OK"),
        ("trace.timestamp_ms > 1749006880539", ATTRIBUTE, "timestamp_ms", ">", 1749006880539),
        ("execution_time <= 2.5", ATTRIBUTE, "execution_time", "<=", 2.5),
        ("timestamp >= -1", ATTRIBUTE, "timestamp", ">=", -1),
        ("tags.environment = 'production'", TAG, "environment", "=", "production"),
        ("tag.env LIKE 'prod%'", TAG, "env", "LIKE", "prod%"),
        ("tags.`mlflow.traceName` = 'qa'", TAG, "mlflow.traceName", "=", "qa"),
        ("tags.mlflow.traceName = 'qa'", TAG, "mlflow.traceName", "=", "qa"),
        ("metadata.`mlflow.trace.session` = 's-1'", METADATA, "mlflow.trace.session", "=", "s-1"),
        ("request_metadata.user ILIKE 'A%'", METADATA, "user", "ILIKE", "A%"),
        ("span.type = 'RETRIEVER'", SPAN, "type", "=", "RETRIEVER"),
        ("span.name IN ('a', 'b')", SPAN, "name", "IN", ("a", "b")),
        ("span.status NOT IN ('ERROR')", SPAN, "status", "NOT IN", ("ERROR",)),
        ("span.attributes.model LIKE '%gpt%'", SPAN, "attributes.model", "LIKE", "%gpt%"),
        ("span.attributes.`mlflow.spanType` = 'LLM'", SPAN, "attributes.mlflow.spanType", "=", "LLM"),
        ("span.content ILIKE '%refund%'", SPAN, "content", "ILIKE", "%refund%"),
        ("feedback.relevance = 'yes'", FEEDBACK, "relevance", "=", "yes"),
        ("feedback.`my.score` RLIKE '^0\\.[5-9]'", FEEDBACK, "my.score", "RLIKE", "^0\\.[5-9]"),
        ("expectation.expected_response != 'x'", EXPECTATION, "expected_response", "!=", "x"),
        ("trace.text LIKE '%foo%'", ATTRIBUTE, "text", "LIKE", "%foo%"),
        ('status = "OK"', ATTRIBUTE, "status", "=", "OK"),
        ("status <> 'OK'", ATTRIBUTE, "status", "!=", "OK"),
        ("name in ('a','b')", ATTRIBUTE, "name", "IN", ("a", "b")),
        ("run_id not in ('r1')", ATTRIBUTE, "run_id", "NOT IN", ("r1",)),
        ("`status` = 'OK'", ATTRIBUTE, "status", "=", "OK"),
    ],
)
def test_parse_one_clause(text, entity, key, comparator, value):
    [clause] = parse_filter(text)
    assert clause.entity == entity
    assert clause.key == key
    assert clause.comparator == comparator
    assert clause.value == value


def test_parse_joins_clauses_with_and():
    clauses = parse_filter("status = 'OK' AND tags.env = 'prod' and timestamp_ms > 5")
    assert [clause.key for clause in clauses] == ["status", "env", "timestamp_ms"]
    assert clauses[1].text == "tags.env = 'prod'"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("tags.q = 'it''s'", "it's"),
        ("tags.q = 'it\\'s'", "it's"),
        ('tags.q = "say ""hi"""', 'say "hi"'),
        ("tags.q = 'a\\d+'", "a\\d+"),
        ("tags.q = ''", ""),
        ("tags.q = 'AND OR'", "AND OR"),
        ("tags.q = '日本語 ✓ [bold]'", "日本語 ✓ [bold]"),
    ],
)
def test_parse_quoted_values(text, value):
    [clause] = parse_filter(text)
    assert clause.value == value


@pytest.mark.parametrize("text", [None, "", "   "])
def test_parse_empty_filter(text):
    assert parse_filter(text) == []
    assert compile_filter(text).sql == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status = 'OK' OR status = 'ERROR'", "OR is not supported"),
        ("status = OK", "must be quoted"),
        ("tags.env = 5", "must be a quoted string"),
        ("timestamp_ms > '5'", "write it unquoted"),
        ("status > 'OK'", "comparator > is not valid for attribute status"),
        ("tags.env IN ('a')", "comparator IN is not valid for tags"),
        ("client_request_id LIKE 'x' AND prompt LIKE 'x'", "comparator LIKE is not valid for attribute prompt"),
        ("trace.text = 'x'", "comparator = is not valid for attribute text"),
        ("span.content = 'x'", "comparator = is not valid for span.content"),
        ("feedback.score > '3'", "comparator > is not valid for feedback values"),
        ("bogus = 'x'", "unknown attribute 'bogus'"),
        ("things.x = 'y'", "unknown entity 'things'"),
        ("span.colour = 'red'", "unknown span key 'colour'"),
        ("span.attributes = 'x'", "span.attributes needs an attribute key"),
        ("status = 'OK", "has no closing '"),
        ("tags.`env = 'x'", "has no closing `"),
        ("status = 'OK' AND", "ends with AND"),
        ("status 'OK'", "is not a comparator"),
        ("status NOT LIKE 'x'", "NOT is only valid in NOT IN"),
        ("status IN 'OK'", "needs a list in parentheses"),
        ("status IN ('OK' 'ERROR')", "separated by commas"),
        ("status IN (1, 2)", "must hold quoted strings"),
        ("status = 'OK' tags.x = 'y'", "expected AND"),
        ("feedback.x RLIKE '('", "invalid regular expression"),
        ("status = 'OK'; DROP TABLE traces", "unexpected character ';'"),
        ("status =", "the value is missing"),
        ("= 'x'", "expected a key"),
    ],
)
def test_parse_rejects_bad_filter(text, expected):
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert expected in str(caught.value)


def test_filter_error_quotes_clause_and_lists_valid_choices():
    with pytest.raises(FilterError) as caught:
        parse_filter("status = 'OK' AND tags.env > 'a' AND name = 'x'")
    message = str(caught.value)
    assert "tags.env > 'a'\"" in message
    assert "name = " not in message
    assert "=, !=, LIKE, ILIKE, RLIKE" in message


def test_unknown_attribute_error_lists_attributes():
    with pytest.raises(FilterError) as caught:
        parse_filter("colour = 'red'")
    assert "timestamp_ms" in str(caught.value)
    assert "tags." in str(caught.value)


def test_filter_error_is_an_invalid_parameter_error():
    with pytest.raises(ValueError):
        parse_filter("status ~ 'x'")


# --- compilation --------------------------------------------------------------------------


def test_compiled_sql_never_contains_values():
    compiled = compile_filter(
        "tags.env = 'x''; DROP TABLE traces; --' AND feedback.q IN ('a', 'b') AND timestamp_ms > 12345"
    )
    assert "DROP" not in compiled.sql
    assert "12345" not in compiled.sql
    assert compiled.params.count("x'; DROP TABLE traces; --") == 1
    assert compiled.sql.count("?") == len(compiled.params)


@pytest.mark.parametrize(
    ("pattern", "glob"),
    [("%foo%", "*foo*"), ("a_c", "a?c"), ("100%*", "100*[*]"), ("[x]?", "[[]x]*".replace("*", "[?]")), ("", "")],
)
def test_like_to_glob(pattern, glob):
    assert like_to_glob(pattern) == glob


@pytest.mark.parametrize(
    ("order_by", "sql"),
    [
        (None, "t.request_time DESC, t.trace_id ASC"),
        ([], "t.request_time DESC, t.trace_id ASC"),
        (["timestamp_ms ASC"], "t.request_time ASC, t.trace_id ASC"),
        (["execution_time DESC"], "t.execution_duration DESC, t.request_time DESC, t.trace_id ASC"),
        (["attributes.name"], "t.name ASC, t.request_time DESC, t.trace_id ASC"),
        ("status desc", "t.state DESC, t.request_time DESC, t.trace_id ASC"),
        (["request_id DESC"], "t.trace_id DESC, t.request_time DESC"),
        (["run_id", "end_time_ms DESC"], "t.run_id ASC, t.end_time DESC, t.request_time DESC, t.trace_id ASC"),
    ],
)
def test_compile_order_by(order_by, sql):
    assert compile_order_by(order_by) == sql


@pytest.mark.parametrize("item", ["colour DESC", "timestamp_ms SIDEWAYS", "timestamp_ms; DROP TABLE traces", ""])
def test_compile_order_by_rejects_unknown_keys(item):
    with pytest.raises(FilterError) as caught:
        compile_order_by([item])
    assert "timestamp_ms" in str(caught.value)


# --- semantics against a real store -------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("filters") / "store.db"
    store = Store(path)
    traces = [
        make_trace(
            0,
            trace_id="tr-" + "0" * 32,
            name="answer",
            outputs="The Refund policy",
            tags={"env": "prod", "mlflow.linkedPrompts": '[{"name": "qa", "version": "2"}]'},
            metadata={"mlflow.sourceRun": "run-a", "user": "Ünïcode"},
            child_type="RETRIEVER",
            child_attributes={"model": "gpt-4o-mini", "temperature": 0.5},
            client_request_id="req-1",
            duration=100,
        ),
        make_trace(
            1,
            trace_id="tr-" + "1" * 32,
            name="answer",
            outputs="no refund",
            tags={"env": "dev"},
            metadata={"user": "ÜNÏCODE"},
            child_type="LLM",
            child_attributes={"model": "claude"},
            duration=300,
        ),
        make_trace(
            2,
            trace_id="tr-" + "2" * 32,
            name="other*name",
            state=TraceState.ERROR,
            span_count=1,
            tags={"env": "prod%"},
            duration=None,
        ),
    ]
    store.log_traces(traces)
    store.link_traces_to_run("run-b", ["tr-" + "1" * 32])
    store.log_assessments(
        [
            Feedback(name="relevance", value="yes", trace_id="tr-" + "0" * 32),
            Feedback(name="relevance", value="no", trace_id="tr-" + "1" * 32),
            Feedback(name="score", value=0.75, trace_id="tr-" + "0" * 32),
            Feedback(name="ok", value=True, trace_id="tr-" + "1" * 32),
            Expectation(name="expected", value=["a", "b"], trace_id="tr-" + "2" * 32),
        ]
    )
    yield store
    store.close()


def ids(store: Store, filter_string: str) -> list[str]:
    return sorted(trace_id[3] for trace_id in store.search_trace_ids(filter_string))


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("status = 'OK'", ["0", "1"]),
        ("status = 'ERROR'", ["2"]),
        ("status != 'OK'", ["2"]),
        ("status IN ('ERROR', 'IN_PROGRESS')", ["2"]),
        ("status = 'ok'", ["0", "1"]),
        ("state NOT IN ('OK')", ["2"]),
        ("request_id = 'tr-11111111111111111111111111111111'", ["1"]),
        ("client_request_id = 'req-1'", ["0"]),
        ("client_request_id != 'req-1'", []),
        ("name = 'answer'", ["0", "1"]),
        ("name LIKE 'other*%'", ["2"]),
        ("name IN ('other*name')", ["2"]),
        ("timestamp_ms > 1750000000000", ["1", "2"]),
        ("timestamp = 1750000000001", ["1"]),
        ("execution_time_ms >= 100 AND execution_time_ms < 300", ["0"]),
        ("end_time_ms > 1750000000200", ["1"]),
        ("run_id = 'run-a'", ["0"]),
        ("run_id = 'run-b'", ["1"]),
        ("run_id IN ('run-a', 'run-b')", ["0", "1"]),
        ("run_id != 'run-a'", ["1", "2"]),
        ("prompt = 'qa/2'", ["0"]),
        ("prompt = 'qa/1'", []),
        ("trace.text LIKE '%Refund%'", ["0"]),
        ("trace.text LIKE '%refund%'", ["1"]),
        ("trace.text ILIKE '%REFUND%'", ["0", "1"]),
        ("tags.env = 'prod'", ["0"]),
        ("tags.env LIKE 'prod%'", ["0", "2"]),
        ("tags.env LIKE 'prod\\%'", []),
        ("tags.env RLIKE '^(dev|prod)$'", ["0", "1"]),
        ("tags.env != 'prod'", ["1", "2"]),
        ("tags.missing = 'x'", []),
        ("metadata.user = 'Ünïcode'", ["0"]),
        ("metadata.user LIKE 'ü%'", []),
        ("metadata.user ILIKE 'ünï%'", ["0", "1"]),
        ("span.type = 'RETRIEVER'", ["0"]),
        ("span.type IN ('LLM', 'RETRIEVER')", ["0", "1"]),
        ("span.type != 'CHAIN'", ["0", "1"]),
        ("span.name = 'step_3'", ["0", "1"]),
        ("span.status = 'ERROR'", ["2"]),
        ("span.status = 'STATUS_CODE_OK'", ["0", "1"]),
        ("span.attributes.model = 'gpt-4o-mini'", ["0"]),
        ("span.attributes.model LIKE 'gpt%'", ["0"]),
        ("span.attributes.temperature = '0.5'", ["0"]),
        ("span.attributes.`mlflow.spanType` = 'LLM'", ["1"]),
        ("span.content LIKE '%gpt-4o%'", ["0"]),
        ("span.content ILIKE '%CLAUDE%'", ["1"]),
        ("feedback.relevance = 'yes'", ["0"]),
        ("feedback.relevance IN ('yes', 'no')", ["0", "1"]),
        ("feedback.relevance != 'yes'", ["1"]),
        ("feedback.score = '0.75'", ["0"]),
        ("feedback.ok = 'true'", ["1"]),
        ("feedback.relevance RLIKE '^y'", ["0"]),
        ("expectation.expected = '[\"a\", \"b\"]'", ["2"]),
        ("expectation.expected LIKE '%\"b\"%'", ["2"]),
        ("feedback.expected = '[\"a\", \"b\"]'", []),
        ("status = 'OK' AND tags.env = 'dev' AND span.type = 'LLM'", ["1"]),
        ("tags.env = 'x'' OR 1=1 --'", []),
    ],
)
def test_filter_semantics(store, filter_string, expected):
    assert ids(store, filter_string) == expected


def test_invalidated_feedback_does_not_match(store):
    assert ids(store, "feedback.relevance = 'no'") == ["1"]
    store.invalidate_assessments(["tr-" + "1" * 32], name="relevance")
    assert ids(store, "feedback.relevance = 'no'") == []
    assert ids(store, "feedback.ok = 'true'") == ["1"]


def test_order_by_with_ties_and_nulls(store):
    assert [t[3] for t in store.search_trace_ids(order_by=["timestamp_ms ASC"])] == ["0", "1", "2"]
    assert [t[3] for t in store.search_trace_ids()] == ["2", "1", "0"]
    assert [t[3] for t in store.search_trace_ids(order_by=["execution_time DESC"])] == ["1", "0", "2"]
    assert [t[3] for t in store.search_trace_ids(order_by=["name DESC"])] == ["2", "1", "0"]
