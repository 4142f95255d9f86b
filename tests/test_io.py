"""Importing and exporting MLflow trace JSON: every variant, folders, JSONL, bad lines, UTF-8."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tui_eval.entities import Trace
from tui_eval.entities._time import rfc3339_to_ms
from tui_eval.entities.trace_state import TraceState
from tui_eval.errors import TuiEvalError
from tui_eval.io import (
    ImportProblem,
    export_format,
    export_store,
    export_traces,
    import_traces,
    read_traces,
    trace_from_document,
)
from tui_eval.store import Store

from test_store_helpers import FIXTURES_317, PYTHON, make_trace, subprocess_env

VARIANTS = Path(__file__).parent / "fixtures" / "trace_variants"


def read_all(path):
    items = list(read_traces(path))
    traces = [item.trace for item in items if not isinstance(item, ImportProblem)]
    problems = [item for item in items if isinstance(item, ImportProblem)]
    return traces, problems


# --- the six variants ---------------------------------------------------------------------


def test_variant_files_all_read():
    traces, problems = read_all(VARIANTS)
    assert problems == []
    assert len(traces) == 6


def test_variant_3_6_base64():
    [trace], _ = read_all(VARIANTS / "1_v3_6_base64.json")
    root, child = trace.data.spans
    assert (root.span_id, root.parent_id) == ("0a1b2c3d4e5f6071", None)
    assert child.parent_id == root.span_id
    assert root.inputs == {"ticket": "Printer jams on page 2", "priority": 3}
    assert child.get_attribute("kb.version") == 7
    assert trace.info.execution_duration == 420
    assert trace.search_assessments("routed_right")[0].value is True


def test_variant_3_5_hex_reads_like_the_base64_form():
    [hex_form], _ = read_all(VARIANTS / "2_v3_5_hex.json")
    [base64_form], _ = read_all(VARIANTS / "1_v3_6_base64.json")
    assert hex_form.data.to_dict() == base64_form.data.to_dict()


def test_variant_v2():
    [trace], _ = read_all(VARIANTS / "3_v2.json")
    assert trace.info.trace_id == "tr-11223344556677889900aabbccddeeff"
    assert trace.info.request_time == 1767225600000
    assert trace.info.execution_duration == 250
    root, child = trace.data.spans
    assert child.parent_id == root.span_id == "0a1b2c3d4e5f6071"
    assert child.events[0].name == "note"
    assert trace.info.tags["mlflow.traceName"] == "legacy_app"


def test_variant_rest_form():
    [trace], _ = read_all(VARIANTS / "4_rest.json")
    assert trace.info.execution_duration == 1500
    [root] = trace.data.spans
    assert root.parent_id is None
    assert root.start_time_ns == 1767225600125000000
    assert root.outputs == "world"


def test_variant_without_spans_and_error_trace():
    [empty], _ = read_all(VARIANTS / "5_no_spans.json")
    assert empty.data.spans == []
    [failed], _ = read_all(VARIANTS / "6_error_exception.json")
    assert failed.info.state == TraceState.ERROR
    [event] = failed.data.spans[0].events
    assert event.attributes["exception.type"] == "TimeoutError"
    assert failed.data.spans[0].status.description.startswith("TimeoutError")


def test_variants_import_and_export_stably(tmp_path):
    with Store(tmp_path / "a.db") as store:
        report = import_traces(store, VARIANTS)
        assert report.problems == []
        assert report.imported == 5  # the 3.5.0 and 3.6+ files hold the same trace
        export_store(store, tmp_path / "first.jsonl")
    with Store(tmp_path / "b.db") as store:
        import_traces(store, tmp_path / "first.jsonl")
        export_store(store, tmp_path / "second.jsonl")
    assert (tmp_path / "first.jsonl").read_text("utf-8") == (tmp_path / "second.jsonl").read_text("utf-8")


def test_current_form_exports_equal_to_input(tmp_path):
    with Store(tmp_path / "s.db") as store:
        import_traces(store, VARIANTS / "1_v3_6_base64.json")
        export_store(store, tmp_path / "out")
    original = json.loads((VARIANTS / "1_v3_6_base64.json").read_text("utf-8"))
    exported = json.loads((tmp_path / "out" / f"{original['info']['trace_id']}.json").read_text("utf-8"))
    assert exported == original


# --- MLflow 3.17 fixtures -----------------------------------------------------------------


def test_mlflow_fixture_folder_exports_parse_equal(tmp_path):
    with Store(tmp_path / "s.db") as store:
        report = import_traces(store, [path for path in FIXTURES_317.glob("tr-*.json")])
        assert report.imported == 4
        assert export_store(store, tmp_path / "folder") == 4
        assert export_store(store, tmp_path / "all.jsonl") == 4
    for path in FIXTURES_317.glob("tr-*.json"):
        original = json.loads(path.read_text("utf-8"))
        assert json.loads((tmp_path / "folder" / path.name).read_text("utf-8")) == original
    lines = (tmp_path / "all.jsonl").read_text("utf-8").splitlines()
    by_id = {json.loads(line)["info"]["trace_id"]: json.loads(line) for line in lines}
    for path in FIXTURES_317.glob("tr-*.json"):
        assert by_id[path.stem] == json.loads(path.read_text("utf-8"))


def test_search_traces_frame_records_import(tmp_path):
    """Rows of a search_traces DataFrame written as JSON records carry the trace in the 'trace' cell."""
    with Store(tmp_path / "s.db") as store:
        report = import_traces(store, FIXTURES_317 / "search_traces_frame.jsonl")
        assert report.problems == []
        assert report.imported == 4
        trace = store.get_trace("tr-18234898bb00fd892757c7ba748c9fc8")
    assert trace.to_dict() == json.loads((FIXTURES_317 / "tr-18234898bb00fd892757c7ba748c9fc8.json").read_text("utf-8"))


# --- JSONL, arrays and bad documents ------------------------------------------------------


def write_jsonl(path, lines):
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_jsonl_bad_lines_are_reported_by_number(tmp_path):
    good = [make_trace(index) for index in range(3)]
    path = tmp_path / "mixed.jsonl"
    write_jsonl(
        path,
        [
            good[0].to_json().encode(),
            b"{not json",
            b"",
            good[1].to_json().encode(),
            b'{"info": {"no_trace_id": true}, "data": {}}',
            b"[1, 2]",
            "\u00e9".encode("latin-1") + b'{"x": 1}',
            good[2].to_json().encode(),
        ],
    )
    with Store(tmp_path / "s.db") as store:
        report = import_traces(store, path)
        assert report.trace_ids == [trace.info.trace_id for trace in good]
        assert store.count_traces() == 3
    problems = {problem.location: problem.message for problem in report.problems}
    assert set(problems) == {"line 2", "line 5", "line 6", "line 7"}
    assert "invalid JSON" in problems["line 2"]
    assert "trace_id" in problems["line 5"]
    assert "list" in problems["line 6"]
    assert "UTF-8" in problems["line 7"]
    assert str(report.problems[0]) == f"{path}: line 2: {problems['line 2']}"


def test_json_array_items_are_reported_by_index(tmp_path):
    path = tmp_path / "array.json"
    path.write_text(json.dumps([make_trace(0).to_dict(), {"info": 5}, make_trace(1).to_dict()]), "utf-8")
    traces, problems = read_all(path)
    assert len(traces) == 2
    assert [problem.location for problem in problems] == ["item 2"]


def test_traces_key_and_concatenated_documents(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"traces": [make_trace(0).to_dict()]}), "utf-8")
    assert len(read_all(wrapped)[0]) == 1
    concatenated = tmp_path / "many.json"
    concatenated.write_text(make_trace(0).to_json() + "\n" + make_trace(1).to_json() + "\n", "utf-8")
    assert len(read_all(concatenated)[0]) == 2


def test_broken_json_file_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "info": {\n  "oops"\n}', "utf-8")
    traces, [problem] = read_all(path)
    assert traces == []
    assert problem.location == "line 4"


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + make_trace(0).to_json().encode("utf-8"))
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes(b"\xef\xbb\xbf" + make_trace(1).to_json().encode("utf-8") + b"\n")
    assert len(read_all(path)[0]) == 1
    assert len(read_all(lines)[0]) == 1


def test_unwritable_trace_is_reported_and_the_rest_imported(tmp_path):
    good = make_trace(0).to_dict()
    broken = make_trace(1).to_dict()
    # Whether reading the trace or building its rows rejects this id, line 2 must be reported.
    broken["data"]["spans"][0]["span_id"] = "0xzzzzzzzzzzzzzz"
    path = tmp_path / "two.jsonl"
    write_jsonl(path, [json.dumps(good).encode(), json.dumps(broken).encode()])
    with Store(tmp_path / "s.db") as store:
        report = import_traces(store, path)
        assert report.imported + len(report.problems) == 2
        assert store.count_traces() == report.imported
    assert good["info"]["trace_id"] in report.trace_ids
    assert all(problem.location == "line 2" for problem in report.problems)


def test_missing_path_raises(tmp_path):
    with pytest.raises(TuiEvalError) as caught:
        list(read_traces(tmp_path / "nope.json"))
    assert "no such file" in str(caught.value)


def test_folder_ignores_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", "utf-8")
    (tmp_path / "a.json").write_text(make_trace(0).to_json(), "utf-8")
    (tmp_path / "b.ndjson").write_text(make_trace(1).to_json() + "\n", "utf-8")
    assert len(read_all(tmp_path)[0]) == 2


def test_trace_from_document_rejects_other_shapes():
    with pytest.raises(ValueError):
        trace_from_document("text")
    with pytest.raises(ValueError):
        trace_from_document({"trace": "{broken"})


# --- export -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "format", "expected"),
    [
        ("out.jsonl", None, "jsonl"),
        ("out.ndjson", None, "jsonl"),
        ("out.json", None, "json"),
        ("out", None, "folder"),
        ("out.txt", "jsonl", "jsonl"),
        ("out.json", "folder", "folder"),
        ("-", None, "jsonl"),
    ],
)
def test_export_format(tmp_path, destination, format, expected):
    assert export_format(tmp_path / destination if destination != "-" else "-", format) == expected


def test_export_format_rejects_unknown():
    with pytest.raises(TuiEvalError):
        export_format("x", "csv")


def test_export_single_json_file(tmp_path):
    one = make_trace(0)
    assert export_traces([one], tmp_path / "one.json") == 1
    assert Trace.from_json((tmp_path / "one.json").read_text("utf-8")) == one
    two = [make_trace(1), make_trace(2)]
    assert export_traces(two, tmp_path / "two.json") == 2
    assert [item["info"]["trace_id"] for item in json.loads((tmp_path / "two.json").read_text("utf-8"))] == [
        trace.info.trace_id for trace in two
    ]
    assert list(tmp_path.glob(".*.tmp")) == []


def test_failed_export_leaves_no_file(tmp_path):
    def traces():
        yield make_trace(0)
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        export_traces(traces(), tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_export_filters_and_orders(tmp_path):
    with Store(tmp_path / "s.db") as store:
        store.log_traces([make_trace(index, tags={"even": str(index % 2 == 0)}) for index in range(6)])
        count = export_store(store, tmp_path / "even.jsonl", filter_string="tags.even = 'True'", order_by=["timestamp_ms ASC"])
    assert count == 3
    lines = (tmp_path / "even.jsonl").read_text("utf-8").splitlines()
    times = [rfc3339_to_ms(json.loads(line)["info"]["request_time"]) for line in lines]
    assert times == sorted(times)


AWKWARD = "日本語 ✓ [bold]x[/bold] \x1b[31m emoji 🧪 nul\x00"


def test_utf8_regardless_of_locale(tmp_path):
    """Export and import in a child process whose locale encoding is ASCII."""
    with Store(tmp_path / "s.db") as store:
        store.log_trace(make_trace(0, outputs=AWKWARD, name="app ✓"))
    script = (
        "import sys\n"
        "from tui_eval.store import Store\n"
        "from tui_eval.io import export_store, import_traces\n"
        "store = Store(sys.argv[1])\n"
        "export_store(store, sys.argv[2])\n"
        "other = Store(sys.argv[3])\n"
        "report = import_traces(other, sys.argv[2])\n"
        "assert report.problems == [], report.problems\n"
        "print(other.search_traces()[0].data.spans[0].outputs == " + ascii(AWKWARD) + ")\n"
    )
    env = subprocess_env()
    env.update({"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"})
    result = subprocess.run(
        [PYTHON, "-c", script, str(tmp_path / "s.db"), str(tmp_path / "out.jsonl"), str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    raw = (tmp_path / "out.jsonl").read_bytes()
    assert "日本語 ✓".encode("utf-8") in raw


def test_base64_ids_starting_with_0x_read_correctly(tmp_path):
    import base64

    # Ids whose first byte 0xd3 and next nibble 0x1 encode to base64 text starting "0x".
    span_hex = "d310000000000001"
    trace_hex = "d3100000000000000000000000000001"
    trace = make_trace(0, trace_id="tr-" + trace_hex)
    document = trace.to_dict()
    root = document["data"]["spans"][0]
    root["span_id"] = base64.b64encode(bytes.fromhex(span_hex)).decode()
    for child in document["data"]["spans"][1:]:
        child["parent_span_id"] = root["span_id"]
    assert root["span_id"].startswith("0x")
    assert root["trace_id"].startswith("0x")
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(document), "utf-8")
    [read], problems = read_all(path)
    assert problems == []
    assert read.data.spans[0].span_id == span_hex
    assert read.data.spans[1].parent_id == span_hex
    assert read.to_dict() == document
