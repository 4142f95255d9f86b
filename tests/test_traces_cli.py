"""`tui-eval traces list|show|export|import`."""

from __future__ import annotations

import json
import subprocess

import pytest

from tui_eval.cli import main
from tui_eval.store import Store
from tui_eval.traces_cli import format_table, visible

from test_store_helpers import FIXTURES_317, PYTHON, make_trace, subprocess_env


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "store.db"
    with Store(path) as store:
        store.log_traces(
            [make_trace(index, name="app", tags={"env": "prod" if index % 2 else "dev"}) for index in range(5)]
        )
    return path


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_table(capsys, store_path):
    code, out, err = run(capsys, "traces", "list", "--store", str(store_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["trace_id", "request_time", "state", "duration_ms", "spans", "tokens", "name", "request"]
    assert len(lines) == 6
    assert "2025-06-15T15:06:40Z" in lines[-1]
    assert '{"question": "question 0"}' in lines[-1]
    assert err == ""


def test_list_filter_limit_and_jsonl(capsys, store_path):
    code, out, err = run(
        capsys, "traces", "list", "--store", str(store_path), "--filter", "tags.env = 'prod'", "--format", "jsonl"
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2
    assert rows[0]["span_count"] == 5
    code, out, err = run(capsys, "traces", "list", "--store", str(store_path), "--limit", "2", "--order-by", "timestamp_ms ASC")
    assert len(out.splitlines()) == 3
    assert "showing 2 of 5 traces" in err
    assert "question 0" in out.splitlines()[1]


def test_list_bad_filter_is_one_line_error(capsys, store_path):
    code, out, err = run(capsys, "traces", "list", "--store", str(store_path), "--filter", "colour = 'red'")
    assert code != 0
    assert out == ""
    assert "unknown attribute 'colour'" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_store_is_reported(capsys, tmp_path):
    code, out, err = run(capsys, "traces", "list", "--store", str(tmp_path / "none.db"))
    assert code == 2
    assert "no store at" in err
    assert not (tmp_path / "none.db").exists()


def test_not_a_store_is_reported_unchanged(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n", "utf-8")
    code, out, err = run(capsys, "traces", "list", "--store", str(path))
    assert code != 0
    assert "not a SQLite database" in err
    assert path.read_text("utf-8") == "shopping list\n"


def test_store_from_environment(capsys, store_path, monkeypatch):
    monkeypatch.setenv("TUI_EVAL_STORE", str(store_path))
    code, out, err = run(capsys, "traces", "list")
    assert code == 0
    assert len(out.splitlines()) == 6


def test_show(capsys, store_path):
    with Store(store_path) as store:
        trace = store.search_traces(max_results=1)[0]
    code, out, err = run(capsys, "traces", "show", trace.info.trace_id, "--store", str(store_path))
    assert code == 0
    assert json.loads(out) == trace.to_dict()
    code, out, err = run(capsys, "traces", "show", "tr-missing", "--store", str(store_path))
    assert code == 1
    assert "not found" in err


def test_import_then_export_round_trip(capsys, tmp_path):
    path = tmp_path / "store.db"
    code, out, err = run(capsys, "traces", "import", str(FIXTURES_317), "--store", str(path))
    assert code == 0, err
    assert "imported 4 traces" in err
    code, out, err = run(capsys, "traces", "export", str(tmp_path / "out"), "--store", str(path))
    assert code == 0
    assert "exported 4 traces" in err
    for original in FIXTURES_317.glob("tr-*.json"):
        exported = tmp_path / "out" / original.name
        assert json.loads(exported.read_text("utf-8")) == json.loads(original.read_text("utf-8"))


def test_export_to_stdout_with_filter(capsys, store_path):
    code, out, err = run(capsys, "traces", "export", "-", "--store", str(store_path), "--filter", "tags.env = 'dev'")
    assert code == 0
    traces = [json.loads(line) for line in out.splitlines()]
    assert len(traces) == 3
    assert {trace["info"]["tags"]["env"] for trace in traces} == {"dev"}


def test_import_reports_bad_lines_and_imports_the_rest(capsys, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(make_trace(0).to_json() + "\nnot json\n" + make_trace(1).to_json() + "\n", "utf-8")
    path = tmp_path / "store.db"
    code, out, err = run(capsys, "traces", "import", str(source), "--store", str(path))
    assert code == 1
    assert f"skipped {source}: line 2: invalid JSON" in err
    assert "imported 2 traces" in err
    assert "skipped 1 bad document" in err
    with Store(path) as store:
        assert store.count_traces() == 2


def test_list_makes_control_characters_visible(capsys, tmp_path):
    path = tmp_path / "store.db"
    with Store(path) as store:
        store.log_trace(make_trace(0, name="evil\x1b[2J", request_preview="line\nbreak \x1b[31mred\x9b [bold]x[/bold]"))
    code, out, err = run(capsys, "traces", "list", "--store", str(path))
    assert "\x1b" not in out
    assert "\x9b" not in out
    assert "evil\\x1b[2J" in out
    assert "line\\nbreak \\x1b[31mred\\x9b [bold]x[/bold]" in out
    assert len(out.splitlines()) == 2


def test_show_escapes_c1_controls(capsys, tmp_path):
    path = tmp_path / "store.db"
    trace = make_trace(0, outputs="a\x9bb\x1bc")
    with Store(path) as store:
        store.log_trace(trace)
    code, out, err = run(capsys, "traces", "show", trace.info.trace_id, "--store", str(path))
    assert "\x9b" not in out
    assert "\x1b" not in out
    assert json.loads(out) == trace.to_dict()


def test_visible():
    assert visible("a\tb\nc\x00\x7f") == "a\tb\nc\\x00\\x7f"
    assert visible("a\tb\nc", cell=True) == "a\\tb\\nc"
    assert visible("日本語 ✓ 🧪") == "日本語 ✓ 🧪"


def test_format_table_without_rows():
    assert format_table([]).split() == ["trace_id", "request_time", "state", "duration_ms", "spans", "tokens", "name", "request"]


def test_command_line_writes_utf8_under_ascii_locale(store_path, tmp_path):
    with Store(store_path) as store:
        store.log_trace(make_trace(9, name="日本語 ✓"))
    env = subprocess_env()
    env.update({"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"})
    result = subprocess.run(
        [PYTHON, "-m", "tui_eval.cli", "traces", "list", "--store", str(store_path)],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "日本語 ✓".encode("utf-8") in result.stdout
