"""`tui-eval generate`: dataset formats, bad rows by line number, app references, stored traces."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tui_eval
import tui_eval.openai
from tui_eval.cli import main
from tui_eval.entities import Expectation
from tui_eval.errors import DatasetError
from tui_eval.generate import AppLoadError, check_arguments, load_app, read_dataset
from tui_eval.llm_server import LLMServer
from tui_eval.tracing import provider, recorder

ROOT = Path(__file__).resolve().parents[1]

APP_SOURCE = textwrap.dedent(
    """
    import tui_eval

    @tui_eval.trace
    def answer(question, style="plain"):
        if question == "explode":
            raise RuntimeError("the app failed on purpose")
        return f"{style}: {question.upper()}"

    def untraced(question):
        return question[::-1]

    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture(autouse=True)
def clean_tracing(tmp_path, monkeypatch):
    monkeypatch.setenv("TUI_EVAL_PROGRESS", "0")
    monkeypatch.delenv("TUI_EVAL_MAX_WORKERS", raising=False)
    provider.reset()
    recorder.clear()
    yield
    tui_eval.openai.autolog(disable=True, silent=True)
    provider.reset()
    recorder.clear()


@pytest.fixture
def app_file(tmp_path):
    path = tmp_path / "qa_app.py"
    path.write_text(APP_SOURCE, encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(question, **expectations):
    record = {"inputs": {"question": question}}
    if expectations:
        record["expectations"] = expectations
    return json.dumps(record)


def run_cli(*args: str) -> int:
    return main(["generate", *args])


def stored_traces(store_path, run_id=None):
    provider.reset()
    tui_eval.set_tracking_uri(store_path)
    return tui_eval.search_traces(run_id=run_id, return_type="list")


def run_id_from(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("run id: "):
            return line.split(": ", 1)[1]
    raise AssertionError(f"no run id in {output!r}")


# --- the happy path -------------------------------------------------------------------------


def test_jsonl_rows_become_traces(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [row("hi", expected_response="plain: HI"), row("bye")])
    store_path = tmp_path / "traces.db"
    code = run_cli(f"{app_file}:answer", "--data", str(data), "--store", str(store_path), "--run-name", "first")
    output = capsys.readouterr()
    assert code == 0, output.err
    assert "rows: 2 read, 0 skipped" in output.out
    assert "traces: 2 stored (2 OK, 0 ERROR)" in output.out
    traces = stored_traces(store_path, run_id_from(output.out))
    assert sorted(t.data.spans[0].outputs for t in traces) == ["plain: BYE", "plain: HI"]
    hi = next(t for t in traces if t.data.spans[0].inputs["question"] == "hi")
    expectations = [a for a in hi.info.assessments if isinstance(a, Expectation)]
    assert [(e.name, e.value) for e in expectations] == [("expected_response", "plain: HI")]


def test_untraced_app_is_traced(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [row("abc")])
    store_path = tmp_path / "traces.db"
    assert run_cli(f"{app_file}:untraced", "--data", str(data), "--store", str(store_path)) == 0
    traces = stored_traces(store_path, run_id_from(capsys.readouterr().out))
    assert traces[0].data.spans[0].outputs == "cba"


def test_app_error_becomes_error_trace(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [row("ok"), row("explode")])
    store_path = tmp_path / "traces.db"
    code = run_cli(f"{app_file}:answer", "--data", str(data), "--store", str(store_path))
    output = capsys.readouterr()
    assert code == 1
    assert "(1 OK, 1 ERROR)" in output.out
    states = sorted(t.info.state for t in stored_traces(store_path, run_id_from(output.out)))
    assert states == ["ERROR", "OK"]


# --- bad rows -------------------------------------------------------------------------------


def test_bad_lines_reported_by_number(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [
        row("one"),
        "",
        "{not json",
        row("four"),
        json.dumps({"inputs": "just text"}),
        json.dumps({"inputs": {"question": "x"}, "outputs": "y"}),
        json.dumps({"inputs": {"prompt": "wrong name"}}),
        json.dumps({"inputs": {"question": "x"}, "expectations": ["not", "a", "dict"]}),
        row("nine"),
    ])
    store_path = tmp_path / "traces.db"
    code = run_cli(f"{app_file}:answer", "--data", str(data), "--store", str(store_path))
    output = capsys.readouterr()
    assert code == 1
    errors = [line for line in output.err.splitlines() if "skipped" in line]
    assert [line.split(":")[1] for line in errors] == ["line 3", "line 5", "line 6", "line 7", "line 8"]
    assert "invalid JSON" in errors[0]
    assert "'inputs' must be an object" in errors[1]
    assert "unexpected keys ['outputs']" in errors[2]
    assert "['prompt'] are not parameters of answer" in errors[3]
    assert "'expectations' must be an object" in errors[4]
    assert "rows: 8 read, 5 skipped" in output.out
    assert len(stored_traces(store_path, run_id_from(output.out))) == 3


def test_all_rows_bad_fails(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", ["{nope", json.dumps({"inputs": 1})])
    assert run_cli(f"{app_file}:answer", "--data", str(data), "--store", str(tmp_path / "t.db")) == 2
    assert "no usable rows" in capsys.readouterr().err


# --- formats --------------------------------------------------------------------------------


def test_json_array_and_data_object(tmp_path):
    records = [{"inputs": {"question": "a"}}, {"inputs": {"question": "b"}, "expectations": {"k": 1}}]
    plain = tmp_path / "rows.json"
    plain.write_text(json.dumps(records), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": records + ["oops"]}), encoding="utf-8")
    rows, problems = read_dataset(plain)
    assert [r.record for r in rows] == records
    assert problems == []
    rows, problems = read_dataset(wrapped)
    assert len(rows) == 2
    assert [(p.location, p.message.split(",")[0]) for p in problems] == [("row 3", "expected a JSON object with 'inputs'")]


def test_csv_json_columns_and_flat_columns(tmp_path):
    json_columns = tmp_path / "json_columns.csv"
    with json_columns.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["inputs", "expectations"])
        writer.writerow([json.dumps({"question": "a, with comma"}), json.dumps({"expected_response": "A"})])
        writer.writerow(["{broken", ""])
    rows, problems = read_dataset(json_columns)
    assert rows[0].record == {"inputs": {"question": "a, with comma"}, "expectations": {"expected_response": "A"}}
    assert problems[0].location == "line 3"
    assert "'inputs' cell is not valid JSON" in problems[0].message

    flat = tmp_path / "flat.csv"
    flat.write_text("question,style,expectations.expected_response\nhi,loud,LOUD: HI\nbye,plain,\n", encoding="utf-8")
    rows, problems = read_dataset(flat)
    assert problems == []
    assert rows[0].record == {"inputs": {"question": "hi", "style": "loud"},
                              "expectations": {"expected_response": "LOUD: HI"}}
    assert rows[1].record == {"inputs": {"question": "bye", "style": "plain"}}


def test_parquet_rows(tmp_path):
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "rows.parquet"
    pandas.DataFrame({
        "inputs": [{"question": "a"}, {"question": "b"}],
        "expectations": [{"expected_response": "A"}, None],
    }).to_parquet(path)
    rows, problems = read_dataset(path)
    assert problems == []
    assert rows[0].record == {"inputs": {"question": "a"}, "expectations": {"expected_response": "A"}}
    assert rows[1].record == {"inputs": {"question": "b"}}


def test_unknown_suffix_rejected(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        read_dataset(path)
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(tmp_path / "missing.jsonl")


# --- app references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_colon_here", "invalid APP_REF"),
        ("{dir}/missing.py:answer", "not found"),
        ("{dir}/qa_app.py:nope", "has no attribute 'nope'"),
        ("{dir}/qa_app.py:NOT_A_FUNCTION", "not a function"),
        ("no_such_module_xyz:answer", "cannot import module"),
    ],
)
def test_bad_app_reference(tmp_path, app_file, capsys, reference, message):
    data = write_jsonl(tmp_path / "data.jsonl", [row("hi")])
    code = run_cli(reference.format(dir=tmp_path), "--data", str(data), "--store", str(tmp_path / "t.db"))
    assert code == 2
    assert message in capsys.readouterr().err


def test_app_import_error_reported(tmp_path):
    broken = tmp_path / "broken_app.py"
    broken.write_text("import no_such_package_qq\n", encoding="utf-8")
    with pytest.raises(AppLoadError, match="importing .*broken_app.py failed: ModuleNotFoundError"):
        load_app(f"{broken}:main")


def test_module_reference_and_arguments(tmp_path, app_file, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    function = load_app("qa_app:answer")
    assert check_arguments(function, {"question": "x"}) is None
    assert check_arguments(function, {"question": "x", "style": "y"}) is None
    assert "lack ['question']" in check_arguments(function, {"style": "y"})


def test_max_workers_validated(tmp_path, app_file, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [row("hi")])
    assert run_cli(f"{app_file}:answer", "--data", str(data), "--max-workers", "0") == 2
    assert "--max-workers must be at least 1" in capsys.readouterr().err


# --- the demo, end to end -------------------------------------------------------------------


def test_demo_generate_subprocess(tmp_path):
    with LLMServer() as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_BASE_URL": server.base_url, "TUI_EVAL_PROGRESS": "0"}
        env.pop("OPENAI_API_KEY", None)
        result = subprocess.run(
            [sys.executable, "-m", "tui_eval.cli", "generate", "demo/app.py:sample_app",
             "--data", "demo/dataset.jsonl", "--store", str(tmp_path / "demo.db"), "--run-name", "demo"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )
        requests = len(server.request_log)
    assert result.returncode == 0, result.stderr
    rows = sum(1 for line in (ROOT / "demo" / "dataset.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    assert f"traces: {rows} stored ({rows} OK, 0 ERROR)" in result.stdout
    assert requests >= rows  # evaluate's pre-flight call of the first row makes one more
    traces = stored_traces(tmp_path / "demo.db", run_id_from(result.stdout))
    assert len(traces) == rows
    assert all(len(t.search_spans(span_type="CHAT_MODEL")) == 1 for t in traces)


def test_invalid_jsonl_line_names_the_column_in_that_line(tmp_path):
    data = tmp_path / "data.jsonl"
    good = json.dumps({"inputs": {"question": "hi"}})
    data.write_text(f'{good}\n{{"inputs": {{"question": "unclosed"}}\n{good}\n', encoding="utf-8")
    rows, problems = read_dataset(data)
    assert len(rows) == 2
    [problem] = problems
    assert problem.location == "line 2"
    assert "at column 36" in problem.message  # just past the 35 characters of the line
