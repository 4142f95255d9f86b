"""`tui-eval demo` end to end, headless: real local server, real traces, real scoring."""

import os
import subprocess
import sys
from pathlib import Path

from tui_eval.store import Store

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"


def _run_demo(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tui_eval.cli", "demo", "--headless", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_demo_records_once_then_reuses_the_traces(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["TUI_EVAL_PROGRESS"] = "0"
    store_path = tmp_path / "demo.db"
    rows = len(DEMO_DIR.joinpath("dataset.jsonl").read_text(encoding="utf-8").splitlines())

    first = _run_demo("--store", str(store_path), env=env)
    assert first.returncode == 0, first.stderr
    assert f"traces: {rows} stored ({rows} OK, 0 ERROR)" in first.stdout
    assert "exact_match" in first.stdout
    assert "keyword_presence" in first.stdout

    with Store(store_path) as store:
        assert store.count_traces() == rows
        trace = store.search_traces(max_results=1)[0]
        assert [span.span_type for span in trace.data.spans][1] == "CHAT_MODEL"

    second = _run_demo("--store", str(store_path), env=env)
    assert second.returncode == 0, second.stderr
    assert "Using the demo traces of run" in second.stdout
    with Store(store_path) as store:
        assert store.count_traces() == rows


def test_demo_with_missing_folder_says_what_to_do(tmp_path):
    result = _run_demo("--demo-dir", str(tmp_path), "--store", str(tmp_path / "d.db"))
    assert result.returncode == 2
    assert "lacks app.py, dataset.jsonl, scorers.py" in result.stderr
    assert "--demo-dir" in result.stderr
    assert not (tmp_path / "d.db").exists()
