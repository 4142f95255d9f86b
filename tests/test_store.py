"""The SQLite store: opening and format checks, round trips, MLflow's DataFrame, runs and assessments."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tui_eval.entities import Expectation, Feedback, Trace, TraceInfo
from tui_eval.entities.trace_info import TraceLocation
from tui_eval.entities.trace_state import TraceState
from tui_eval.errors import InvalidParameterError, StoreError, StoreFormatError
from tui_eval.store import INCOMPLETE_KEY, Store, TraceSummary, default_store_path
from tui_eval.store import schema
from tui_eval.store.decode import stored_trace
from tui_eval.store.frame import traces_to_dataframe

from test_store_helpers import FIXTURES_317, make_span, make_trace

FIXTURE_FILES = sorted(FIXTURES_317.glob("tr-*.json"))


def load_fixture_traces() -> list[Trace]:
    return [Trace.from_json(path.read_text(encoding="utf-8")) for path in FIXTURE_FILES]


# --- opening ------------------------------------------------------------------------------


def test_new_store_has_schema_and_pragmas(tmp_path):
    path = tmp_path / "new" / "store.db"
    with Store(path) as store:
        assert store.path == path
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert connection.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "runs", "traces", "trace_tags", "trace_metadata", "spans", "trace_runs", "assessments"} <= tables


def test_store_reopens_and_keeps_traces(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
    with Store(tmp_path / "s.db") as store:
        assert store.get_trace(trace.info.trace_id) == trace


def test_store_accepts_sqlite_uri(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'uri.db'}") as store:
        assert store.path == tmp_path / "uri.db"


def test_default_store_path(tmp_path, monkeypatch):
    monkeypatch.delenv("TUI_EVAL_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_store_path() == tmp_path / "tui_eval.db"
    monkeypatch.setenv("TUI_EVAL_STORE", str(tmp_path / "elsewhere.db"))
    assert default_store_path() == tmp_path / "elsewhere.db"


def snapshot(path):
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not a database\n", b"\x00\x01\x02" * 100, b"SQLite format 2\x00" + b"\x00" * 200],
)
def test_non_sqlite_file_is_rejected_unchanged(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    before = snapshot(path)
    with pytest.raises(StoreFormatError) as caught:
        Store(path)
    assert "not a SQLite database" in str(caught.value)
    assert str(path) in str(caught.value)
    assert snapshot(path) == before


def test_foreign_sqlite_database_is_rejected_unchanged(tmp_path):
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    connection.commit()
    connection.close()
    before = snapshot(path)
    with pytest.raises(StoreFormatError) as caught:
        Store(path)
    assert "another application" in str(caught.value)
    assert snapshot(path) == before


def test_newer_schema_is_rejected_unchanged(tmp_path):
    path = tmp_path / "future.db"
    Store(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    connection.close()
    before = snapshot(path)
    with pytest.raises(StoreFormatError) as caught:
        Store(path)
    message = str(caught.value)
    assert f"schema version {schema.SCHEMA_VERSION + 1}" in message
    assert "Upgrade tui_eval" in message
    assert snapshot(path) == before


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert store.count_traces() == 0


def test_directory_path_is_rejected(tmp_path):
    with pytest.raises(StoreError) as caught:
        Store(tmp_path)
    assert "is a directory" in str(caught.value)


def test_closed_store_raises(tmp_path):
    store = Store(tmp_path / "s.db")
    store.close()
    with pytest.raises(StoreError):
        store.count_traces()


# --- MLflow 3.17 fixtures -----------------------------------------------------------------


@pytest.fixture
def fixture_store(tmp_path):
    with Store(tmp_path / "fixtures.db") as store:
        store.log_traces(load_fixture_traces())
        yield store


def test_fixtures_round_trip_unchanged(fixture_store):
    assert len(FIXTURE_FILES) == 4
    for path in FIXTURE_FILES:
        original = json.loads(path.read_text(encoding="utf-8"))
        stored = fixture_store.get_trace(original["info"]["trace_id"])
        assert stored is not None
        assert json.loads(stored.to_json()) == original


def test_fixtures_keep_every_span_event_and_assessment(fixture_store):
    trace = fixture_store.get_trace("tr-dd2a7c85ea0b601e94fddcccf3a99795")
    assert trace.info.state == TraceState.ERROR
    [event] = trace.data.spans[0].events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"
    evaluated = fixture_store.get_trace("tr-378bb57e09b1107c8e7150728b047cf6")
    names = [assessment.name for assessment in evaluated.info.assessments]
    assert names == ["mentions_keyword", "crashes", "length", "expected_response", "expected_keywords"]
    assert evaluated.search_assessments("expected_keywords")[0].value == ["30 days"]
    assert evaluated.search_assessments("crashes")[0].error.error_code == "SCORER_ERROR"


def frame_cells_equal(ours, theirs, column):
    if column == "trace":
        return json.loads(ours) == json.loads(theirs)
    if hasattr(ours, "item"):
        ours = ours.item()
    return json.loads(json.dumps(ours)) == theirs


@pytest.mark.parametrize("builder", ["entities", "stored"])
def test_frame_matches_mlflow_search_traces(fixture_store, builder):
    expected = [json.loads(line) for line in (FIXTURES_317 / "search_traces_frame.jsonl").read_text("utf-8").splitlines()]
    if builder == "entities":
        frame = traces_to_dataframe(fixture_store.search_traces())
    else:
        frame = fixture_store.search_traces_frame()
    assert list(frame.columns) == list(expected[0])
    assert len(frame) == len(expected)
    for index, row in enumerate(expected):
        for column, value in row.items():
            assert frame_cells_equal(frame[column].iloc[index], value, column), (index, column)
    assert str(frame["request_time"].dtype) == "int64"
    assert str(frame["execution_duration"].dtype) == "int64"
    assert frame["state"].iloc[0] == TraceState.ERROR
    assert frame["response"].iloc[0] is None


def test_frame_of_no_traces_has_the_columns(tmp_path):
    with Store(tmp_path / "s.db") as store:
        frame = store.search_traces_frame()
    assert list(frame.columns) == Trace.pandas_dataframe_columns()
    assert len(frame) == 0
    assert list(traces_to_dataframe([]).columns) == Trace.pandas_dataframe_columns()


def test_frame_keeps_missing_duration_as_none(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.log_traces([make_trace(0, duration=7), make_trace(1, duration=None)])
        frame = store.search_traces_frame()
    assert list(frame["execution_duration"]) == [None, 7]


def test_stored_fast_path_equals_from_dict(fixture_store):
    """The store's fast reader and Trace.from_dict build equal traces from the same JSON."""
    connection = fixture_store._connection
    rows = connection.execute("SELECT trace_id, state, request_time, info_json, spans_json FROM traces").fetchall()
    for trace_id, state, request_time, info_json, spans_json in rows:
        assessments = [
            json.loads(text)
            for (text,) in connection.execute(
                "SELECT assessment_json FROM assessments WHERE trace_id = ? ORDER BY rowid", (trace_id,)
            )
        ]
        fast = stored_trace(json.loads(info_json), json.loads(spans_json), assessments, state, request_time)
        info = json.loads(info_json)
        if assessments:
            info["assessments"] = assessments
        slow = Trace.from_dict({"info": info, "data": {"spans": json.loads(spans_json)}})
        assert fast.to_dict() == slow.to_dict()
        assert [span.span_id for span in fast.data.spans] == [span.span_id for span in slow.data.spans]
        assert [span.parent_id for span in fast.data.spans] == [span.parent_id for span in slow.data.spans]


def test_frame_builders_agree_on_generated_traces(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.log_traces([make_trace(index, client_request_id=f"c{index}") for index in range(20)])
        store.log_assessment(Feedback(name="ok", value=True, trace_id=store.search_trace_ids()[3]))
        from_entities = traces_to_dataframe(store.search_traces())
        from_storage = store.search_traces_frame()
    for column in from_entities.columns:
        for ours, theirs in zip(from_storage[column], from_entities[column]):
            if column == "trace":
                assert json.loads(ours) == json.loads(theirs)
            else:
                assert ours == theirs, column


# --- search and listing -------------------------------------------------------------------


def test_search_traces_options(tmp_path):
    with Store(tmp_path / "s.db") as store:
        traces = [make_trace(index, experiment_id="1" if index % 2 else "0") for index in range(6)]
        store.log_traces(traces)
        newest_first = [trace.info.trace_id for trace in reversed(traces)]
        assert [trace.info.trace_id for trace in store.search_traces()] == newest_first
        assert len(store.search_traces(max_results=2)) == 2
        assert len(store.search_traces(experiment_ids=["1"])) == 3
        assert len(store.search_traces(experiment_ids="0")) == 3
        light = store.search_traces(include_spans=False, max_results=1)[0]
        assert light.data.spans == []
        assert light.info.trace_id == newest_first[0]
        assert store.count_traces("status = 'OK'") == 6
        assert store.search_trace_ids(order_by=["timestamp_ms ASC"], max_results=1) == [traces[0].info.trace_id]
        with pytest.raises(InvalidParameterError):
            store.search_traces(max_results=-1)


def test_list_summaries(tmp_path):
    with Store(tmp_path / "s.db") as store:
        trace = make_trace(
            3,
            name="support",
            inputs={"messages": [{"role": "user", "content": "hi"}]},
            metadata={"mlflow.trace.tokenUsage": json.dumps({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7})},
            request_preview="hi",
        )
        store.log_trace(trace)
        store.log_trace(make_trace(1, request_preview=None))
        [first, second] = store.list_summaries()
        assert first == TraceSummary(
            trace_id=trace.info.trace_id,
            name="support",
            request_time=trace.info.request_time,
            execution_duration=5,
            state="OK",
            request_preview="hi",
            response_preview='"answer 3"',
            total_tokens=7,
            span_count=5,
        )
        assert second.request_preview == '{"question": "question 1"}'
        assert store.list_summaries(limit=1, offset=1) == [second]
        assert store.list_summaries(filter_string="name = 'support'") == [first]


def test_span_token_usage_is_summed_when_metadata_has_none(tmp_path):
    trace = make_trace(child_attributes={"mlflow.chat.tokenUsage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}})
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        assert store.list_summaries()[0].total_tokens == 12


def test_get_traces_keeps_requested_order(tmp_path):
    traces = [make_trace(index) for index in range(3)]
    with Store(tmp_path / "s.db") as store:
        store.log_traces(traces)
        wanted = [traces[2].info.trace_id, "tr-missing", traces[0].info.trace_id]
        assert [trace.info.trace_id for trace in store.get_traces(wanted)] == [wanted[0], wanted[2]]
        assert store.get_trace("tr-missing") is None
        assert store.get_traces([]) == []


# --- writes -------------------------------------------------------------------------------


def test_log_trace_replaces_earlier_copy(tmp_path):
    first = make_trace(0, span_count=5, tags={"v": "1"})
    second = make_trace(0, trace_id=first.info.trace_id, span_count=2, tags={"v": "2"})
    with Store(tmp_path / "s.db") as store:
        store.log_trace(first)
        store.log_trace(second)
        assert store.count_traces() == 1
        assert store.get_trace(first.info.trace_id) == second
        assert store.search_trace_ids("tags.v = '1'") == []
        assert store._connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 2


def test_log_traces_with_duplicates_keeps_last(tmp_path):
    first = make_trace(0, tags={"v": "1"})
    second = make_trace(0, trace_id=first.info.trace_id, tags={"v": "2"})
    with Store(tmp_path / "s.db") as store:
        assert store.log_traces([first, second]) == 2
        assert store.get_trace(first.info.trace_id).info.tags["v"] == "2"


def test_log_traces_reports_unwritable_traces(tmp_path):
    good = make_trace(0)
    bad = make_trace(1)
    bad.data.spans[0].span_id = "not hex"
    problems = []
    with Store(tmp_path / "s.db") as store:
        written = store.log_traces([good, bad], on_error=lambda trace, error: problems.append(trace))
        assert written == 1
        assert problems == [bad]
        assert store.search_trace_ids() == [good.info.trace_id]
        with pytest.raises(ValueError):
            store.log_traces([bad])


def test_begin_trace_then_log_trace(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.begin_trace(trace.info, os.getpid())
        [summary] = store.list_summaries()
        assert summary.state == "IN_PROGRESS"
        assert summary.span_count == 0
        store.log_trace(trace)
        assert store.get_trace(trace.info.trace_id) == trace
        row = store._connection.execute("SELECT writer_pid FROM traces").fetchone()
        assert row[0] is None


def test_begin_trace_never_overwrites_a_finished_trace(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        store.begin_trace(trace.info, os.getpid())
        assert store.get_trace(trace.info.trace_id) == trace


def test_in_progress_trace_of_live_process_is_kept(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.begin_trace(trace.info, os.getpid())
    with Store(tmp_path / "s.db") as store:
        assert store.list_summaries()[0].state == "IN_PROGRESS"


def test_in_progress_trace_of_dead_pid_is_closed(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        # A pid above the kernel's maximum never belongs to a running process.
        store.begin_trace(trace.info, 2**22 + 12345)
    with Store(tmp_path / "s.db") as store:
        closed = store.get_trace(trace.info.trace_id)
        assert closed.info.state == TraceState.ERROR
        assert "ended before the trace finished" in closed.info.trace_metadata[INCOMPLETE_KEY]
        assert store.search_trace_ids(f"metadata.`{INCOMPLETE_KEY}` LIKE '%pid%'") == [trace.info.trace_id]


def test_set_and_delete_trace_tag(tmp_path):
    trace = make_trace(name="old")
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        store.set_trace_tag(trace.info.trace_id, "mlflow.traceName", "new")
        store.set_trace_tag(trace.info.trace_id, "reviewed", "yes")
        assert store.get_trace(trace.info.trace_id).info.tags["reviewed"] == "yes"
        assert store.list_summaries()[0].name == "new"
        assert store.search_trace_ids("name = 'new' AND tags.reviewed = 'yes'") == [trace.info.trace_id]
        store.delete_trace_tag(trace.info.trace_id, "reviewed")
        assert "reviewed" not in store.get_trace(trace.info.trace_id).info.tags
        assert store.search_trace_ids("tags.reviewed = 'yes'") == []
        with pytest.raises(InvalidParameterError):
            store.set_trace_tag("tr-missing", "a", "b")


# --- experiments, runs, assessments -------------------------------------------------------


def test_experiments(tmp_path):
    with Store(tmp_path / "s.db") as store:
        assert store.get_or_create_experiment() == "0"
        store.log_trace(make_trace(experiment_id="7"))
        created = store.get_or_create_experiment("evals")
        assert created == "8"
        assert store.get_or_create_experiment("evals") == created
        assert [item["name"] for item in store.list_experiments()] == ["Default", "evals"]
        with pytest.raises(InvalidParameterError):
            store.get_or_create_experiment("")


def test_runs(tmp_path):
    with Store(tmp_path / "s.db") as store:
        run_id = store.create_run("0", "first eval", "evaluate", {"scorers": ["a"]})
        assert len(run_id) == 32
        run = store.get_run(run_id)
        assert run["status"] == "RUNNING"
        assert run["params"] == {"scorers": ["a"]}
        store.update_run(run_id, status="FINISHED", metrics={"a/mean": 0.5})
        store.update_run(run_id, metrics={"b/mean": 1.0})
        run = store.get_run(run_id)
        assert run["status"] == "FINISHED"
        assert run["end_time"] is not None
        assert run["metrics"] == {"a/mean": 0.5, "b/mean": 1.0}
        assert store.get_run("missing") is None
        assert [item["run_id"] for item in store.list_runs("0")] == [run_id]
        assert store.list_runs("9") == []
        with pytest.raises(InvalidParameterError):
            store.update_run("missing", status="FAILED")


def test_link_traces_to_run(tmp_path):
    traces = [make_trace(index) for index in range(3)]
    with Store(tmp_path / "s.db") as store:
        store.log_traces(traces)
        run_id = store.create_run("0", None, "evaluate")
        store.link_traces_to_run(run_id, [traces[0].info.trace_id, traces[2].info.trace_id])
        store.link_traces_to_run(run_id, [traces[0].info.trace_id])
        assert sorted(store.search_trace_ids(run_id=run_id)) == sorted([traces[0].info.trace_id, traces[2].info.trace_id])
        assert store.count_traces(run_id=run_id) == 2
        assert len(store.list_summaries(run_id=run_id)) == 2


def test_log_assessment_assigns_id_and_round_trips(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        feedback = Feedback(name="quality", value=4, rationale="good", trace_id=trace.info.trace_id,
                            metadata={"mlflow.assessment.sourceRunId": "run1", "tui_eval.generation": "3"})
        returned = store.log_assessment(feedback)
        assert returned is feedback
        assert feedback.assessment_id.startswith("a-")
        stored = store.get_trace(trace.info.trace_id).info.assessments
        assert [item.to_dictionary() for item in stored] == [feedback.to_dictionary()]
        assert stored[0].value == 4
        assert isinstance(stored[0].value, int)
        row = store._connection.execute("SELECT run_id, generation, value_text, kind FROM assessments").fetchone()
        assert row == ("run1", "3", "4", "feedback")


def test_log_assessment_rejects_unknown_trace(tmp_path):
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(InvalidParameterError) as caught:
            store.log_assessment(Feedback(name="x", value=1, trace_id="tr-missing"))
        assert "tr-missing" in str(caught.value)
        with pytest.raises(InvalidParameterError):
            store.log_assessment(Feedback(name="x", value=1))


def test_assessment_upsert_and_override(tmp_path):
    trace = make_trace()
    trace_id = trace.info.trace_id
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        first = store.log_assessment(Feedback(name="q", value="no", trace_id=trace_id))
        first.value = "maybe"
        store.log_assessment(first)
        assert [item.value for item in store.get_trace(trace_id).info.assessments] == ["maybe"]
        store.log_assessment(Feedback(name="q", value="yes", trace_id=trace_id, overrides=first.assessment_id))
        stored = store.get_trace(trace_id)
        assert [(item.value, item.valid) for item in stored.info.assessments] == [("maybe", False), ("yes", True)]
        assert [item.value for item in stored.search_assessments("q")] == ["yes"]


def test_invalidate_assessments_by_generation(tmp_path):
    trace = make_trace()
    trace_id = trace.info.trace_id
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        store.log_assessments(
            [
                Feedback(name="a", value=1, trace_id=trace_id, metadata={"tui_eval.generation": "1"}),
                Feedback(name="a", value=2, trace_id=trace_id, metadata={"tui_eval.generation": "2"}),
                Feedback(name="a", value=3, trace_id=trace_id),
                Expectation(name="a", value="gold", trace_id=trace_id, metadata={"tui_eval.generation": "1"}),
            ]
        )
        assert store.invalidate_assessments([trace_id], generation_tag="2") == 1
        valid = [(type(item).__name__, item.value) for item in store.get_trace(trace_id).search_assessments()]
        assert valid == [("Feedback", 2), ("Feedback", 3), ("Expectation", "gold")]
        assert store.invalidate_assessments([trace_id], name="a") == 2
        assert store.invalidate_assessments([trace_id], name="a") == 0
        every = store.get_trace(trace_id).search_assessments(all=True)
        assert [item.valid for item in every] == [False, False, False, True]


def test_delete_assessments(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        feedback = store.log_assessment(Feedback(name="a", value=1, trace_id=trace.info.trace_id))
        assert store.delete_assessments([feedback.assessment_id, "a-missing"]) == 1
        assert store.get_trace(trace.info.trace_id).info.assessments == []


def test_reimport_keeps_scores_logged_later(tmp_path):
    trace = make_trace()
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        store.log_assessment(Feedback(name="a", value=1, trace_id=trace.info.trace_id))
        store.log_trace(trace)
        assert [item.name for item in store.get_trace(trace.info.trace_id).info.assessments] == ["a"]


# --- awkward content ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [["a", "list", 1], "a bare string", None, 42, {"nested": {"deep": [None, True, 1.5]}}],
    ids=["list", "string", "none", "number", "dict"],
)
def test_root_inputs_of_any_json_type(tmp_path, inputs):
    trace = make_trace(inputs=inputs)
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        stored = store.get_trace(trace.info.trace_id)
        assert stored.data.spans[0].inputs == inputs
        frame = store.search_traces_frame()
        assert frame["request"].iloc[0] == inputs
        assert store.list_summaries()[0].request_preview == json.dumps(inputs)


def test_outputs_without_json_form(tmp_path):
    from tui_eval.tracing.encoding import dump_value

    class Opaque:
        __slots__ = ()

        def __repr__(self):
            return "<Opaque thing>"

    trace = make_trace()
    root = trace.data.spans[0]
    root.raw_attributes["mlflow.spanOutputs"] = dump_value({"result": Opaque(), "items": {1, 2}})
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        stored = store.get_trace(trace.info.trace_id)
    assert stored.data.spans[0].raw_attributes["mlflow.spanOutputs"] == root.raw_attributes["mlflow.spanOutputs"]
    assert "Opaque" in json.dumps(stored.data.spans[0].outputs)


AWKWARD_TEXT = "[bold]red[/bold] [/ \x1b[31mANSI\x1b[0m nul\x00byte emoji 🧪👩‍🔬 right-to-left \u202e tab\tnew\nline"


def test_awkward_text_is_stored_verbatim(tmp_path):
    trace = make_trace(
        inputs={"text": AWKWARD_TEXT},
        outputs=AWKWARD_TEXT,
        name="n[/]ame\x1b",
        tags={"t\x00": AWKWARD_TEXT},
        request_preview=AWKWARD_TEXT,
    )
    trace.data.spans[1].name = AWKWARD_TEXT
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        stored = store.get_trace(trace.info.trace_id)
        assert stored == trace
        assert stored.data.spans[0].outputs == AWKWARD_TEXT
        assert stored.data.spans[1].name == AWKWARD_TEXT
        assert stored.info.tags["t\x00"] == AWKWARD_TEXT
        summary = store.list_summaries()[0]
        assert summary.request_preview == AWKWARD_TEXT
        assert summary.name == "n[/]ame\x1b"
        assert store.search_trace_ids("span.name LIKE '%[/bold]%ANSI%'") == [trace.info.trace_id]
        # Span content is JSON, where NUL is written \u0000, so a search reaches past it.
        assert store.search_trace_ids("trace.text LIKE '%[/bold]%byte emoji 🧪👩%'") == [trace.info.trace_id]


def test_lone_surrogates_are_replaced(tmp_path):
    trace = make_trace(outputs="bad \ud800 text", tags={"k": "x\udfffy"})
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        stored = store.get_trace(trace.info.trace_id)
    assert stored.data.spans[0].outputs == "bad \ufffd text"
    assert stored.info.tags["k"] == "x\ufffdy"


def test_long_previews_are_cut_for_the_list(tmp_path):
    trace = make_trace(outputs="x" * 5000)
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        summary = store.list_summaries()[0]
        assert len(summary.response_preview) == 1000
        assert summary.response_preview.endswith("...")
        assert store.get_trace(trace.info.trace_id).data.spans[0].outputs == "x" * 5000


def test_trace_without_spans(tmp_path):
    info = TraceInfo(trace_id="tr-" + "a" * 32, trace_location=TraceLocation("0"), request_time=5, state="OK")
    trace = Trace(info)
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        assert store.get_trace(info.trace_id) == trace
        assert store.list_summaries()[0].span_count == 0
        assert store.search_traces_frame()["request"].iloc[0] is None


def test_span_events_survive(tmp_path):
    from tui_eval.entities import SpanEvent

    trace = make_trace()
    trace.data.spans[1] = make_span(
        trace.info.trace_id,
        "streamed",
        parent_id=trace.data.spans[0].span_id,
        events=[SpanEvent("mlflow.chunk.item.0", 123, {"mlflow.chunk.value": '"a"'}), SpanEvent("x", 124, {})],
    )
    with Store(tmp_path / "s.db") as store:
        store.log_trace(trace)
        events = store.get_trace(trace.info.trace_id).data.spans[1].events
    assert [(event.name, event.timestamp, event.attributes) for event in events] == [
        ("mlflow.chunk.item.0", 123, {"mlflow.chunk.value": '"a"'}),
        ("x", 124, {}),
    ]
