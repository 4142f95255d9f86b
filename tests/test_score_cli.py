"""``tui-eval score`` in a real subprocess: formats, thresholds, exit codes, --only-failed, --watch."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_workbench_support import make_store, write_module

REPO = Path(__file__).resolve().parents[1]
TRACES = 10

SCORERS = textwrap.dedent(
    """
    from tui_eval.entities import Feedback
    from tui_eval.genai.scorers import scorer

    @scorer
    def has_fact(outputs, expectations):
        return expectations["expected_fact"].lower() in outputs.lower()

    @scorer(aggregations=["mean", "max"])
    def length(outputs):
        return len(outputs)

    @scorer
    def mentions_canada(outputs):
        found = "canada" in outputs.lower()
        return Feedback(value="yes" if found else "no", rationale="looked for 'Canada'")
    """
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    make_store(root / "traces.db", TRACES)
    (root / "scorers.py").write_text(SCORERS)
    return root


def score(workspace: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TUI_EVAL_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "tui_eval.cli", "score", *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_table_summary_and_thresholds_met(workspace):
    result = score(workspace, "scorers.py", "--store", "traces.db", "--fail-under", "has_fact=1.0", "--fail-under", "length/max=10")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["scorer", "mean", "max", "n_scored", "n_error", "n_none", "n_nan", "n_other"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["has_fact"][1] == "1"
    assert rows["mentions_canada"][1] == "0.2"
    assert rows["length"][3] == str(TRACES)


def test_missed_threshold_exits_1(workspace):
    result = score(workspace, "scorers.py", "--store", "traces.db", "--format", "json", "--fail-under", "mentions_canada=0.5")

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["metrics"]["mentions_canada/mean"] == pytest.approx(0.2)
    assert document["traces"] == TRACES
    assert document["scorers"] == ["has_fact", "length", "mentions_canada"]
    assert "mentions_canada/mean = 0.2 is under the threshold 0.5" in result.stderr


def test_csv_and_markdown_formats(workspace):
    as_csv = score(workspace, "scorers.py", "--store", "traces.db", "--format", "csv")
    as_markdown = score(workspace, "scorers.py", "--store", "traces.db", "--format", "markdown")

    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["scorer"] for row in rows] == ["has_fact", "length", "mentions_canada"]
    assert rows[1]["n_scored"] == str(TRACES)
    assert as_markdown.stdout.startswith("| scorer | mean | max |")
    assert "| has_fact | 1 |" in as_markdown.stdout


def test_only_failed_lists_failing_cells_with_rationale(workspace):
    result = score(workspace, "scorers.py", "--store", "traces.db", "--only-failed", "--format", "json")

    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout)
    assert len(failures) == TRACES - TRACES // 5
    assert {failure["scorer"] for failure in failures} == {"mentions_canada"}
    assert all(failure["detail"] == "looked for 'Canada'" for failure in failures)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py", "--store", "traces.db"], "scorer module"),
        (["scorers.py", "--store", "missing.db"], "store"),
        (["scorers.py", "--store", "traces.db", "--fail-under", "nonsense"], "METRIC=VALUE"),
        (["scorers.py", "--store", "traces.db", "--filter", "status ==="], "filter"),
    ],
)
def test_usage_errors_exit_2(workspace, args, message):
    result = score(workspace, *args)

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "nosuchrun"], "no traces match --run nosuchrun in"),
        (["--filter", "status = 'OKK'"], "no traces match --filter \"status = 'OKK'\" in"),
    ],
)
def test_no_matching_traces_exits_2(workspace, args, message):
    result = score(workspace, "scorers.py", "--store", "traces.db", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert f"({TRACES} traces stored)" in result.stderr
    assert result.stdout == ""


def test_fail_under_before_module_takes_one_value(workspace):
    result = score(
        workspace, "--fail-under", "has_fact=0", "--fail-under", "length/max=1", "scorers.py", "--store", "traces.db"
    )

    assert result.returncode == 0, result.stderr
    assert "has_fact" in result.stdout


def test_load_error_exits_2_with_file_and_line(workspace):
    (workspace / "broken.py").write_text("from tui_eval.genai.scorers import scorer\n\nX = 1 / 0\n")

    result = score(workspace, "broken.py", "--store", "traces.db")

    assert result.returncode == 2
    assert f"{workspace / 'broken.py'}:3: ZeroDivisionError: division by zero" in result.stderr


def test_watch_prints_changes_after_each_save(workspace):
    module = workspace / "watched.py"
    module.write_text(SCORERS)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "tui_eval.cli", "score", "watched.py", "--store", "traces.db", "--watch",
         "--format", "csv", "--fail-under", "has_fact=0.5"],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _read_until(process.stdout, "mentions_canada,")
        assert "has_fact,1.0" in first
        write_module(module, SCORERS.replace('"canada" in outputs.lower()', "True"))
        second = _read_until(process.stdout, "mentions_canada,")
        assert "mentions_canada,1.0" in second
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _out, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, errors
    assert "mentions_canada/mean: 0.2 -> 1 (+0.8)" in errors
    assert "changed" in errors
    assert "stopped" in errors


def _read_until(stream, marker: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(marker):
            return "".join(seen)
    raise AssertionError(f"no line starting with {marker!r} in {''.join(seen)!r}")
