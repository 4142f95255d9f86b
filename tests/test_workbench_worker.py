"""The worker's pieces in isolation: cells from scorer results, fresh imports, load errors."""

from __future__ import annotations

import json
import math
import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest

from tui_eval.entities import Feedback
from tui_eval.genai.aggregation import classify_value
from tui_eval.genai.scorers import scorer
from tui_eval.genai.scoring import ScoringItem, prepare_scorers
from tui_eval.workbench.results import cell_from_feedback
from tui_eval.workbench.worker import describe_load_error, is_user_path, plain_outcome, score_cells

REPO = Path(__file__).resolve().parents[1]

RESULTS = {
    "true": lambda: True,
    "int": lambda: 3,
    "float": lambda: 2.5,
    "nan": lambda: math.nan,
    "yes": lambda: "Yes",
    "no": lambda: "no",
    "text": lambda: "maybe",
    "none": lambda: None,
    "numpy": lambda: numpy.int64(4),
    "feedback": lambda: Feedback(value=0.5, rationale="half", metadata={"k": "v"}),
    "named list": lambda: [Feedback(name="a", value=1), Feedback(value="no")],
    "dict": lambda: {"not": "allowed"},
    "raises": lambda: 1 / 0,
    "exits": lambda: sys.exit(3),
}


def comparable(cells):
    """Cells without stack traces, which differ by the frames of the two call paths."""
    if cells is None:
        return None
    return [cell[:5] + cell[6:] for cell in cells]


@pytest.mark.parametrize("kind", list(RESULTS))
def test_score_cells_match_the_scoring_core(kind):
    make = RESULTS[kind]

    @scorer(name=f"s_{kind.replace(' ', '_')}")
    def returns(outputs):
        return make()

    (entry,) = prepare_scorers([returns])
    item = ScoringItem(trace_id="tr-1", outputs="text")

    expected = entry.score(item)
    expected_cells = None if expected is None else [cell_from_feedback(f, classify_value(f), entry.name) for f in expected]

    assert comparable(score_cells(entry, item)) == comparable(expected_cells)


def test_score_cells_reports_unfillable_parameter():
    @scorer
    def needs_question(question):
        return True

    (entry,) = prepare_scorers([needs_question])

    (cell,) = score_cells(entry, ScoringItem(trace_id="tr-1"))

    assert cell[3] == "SCORER_ERROR"
    assert "question" in cell[4]


@pytest.mark.parametrize("value", [True, False, 0, 7, 1.5, math.inf, math.nan, "YES", "No", "other", ""])
def test_plain_outcome_matches_classify_value(value):
    expected = classify_value(Feedback(value=value, _allow_empty=True))
    outcome = plain_outcome(value)

    assert outcome == expected


def test_user_paths_exclude_libraries(tmp_path):
    user_file = tmp_path / "mine.py"
    user_file.write_text("")

    assert is_user_path(str(user_file))
    assert not is_user_path(json.__file__)
    assert not is_user_path(pytest.__file__)
    assert not is_user_path(str(REPO / "tui_eval" / "workbench" / "worker.py"))
    assert not is_user_path("<frozen importlib._bootstrap>")


def test_describe_syntax_error(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("x = (\n")
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as exc:
        described = describe_load_error(exc, str(path))

    assert described["path"] == str(path)
    assert described["line"] == 1
    assert described["message"].startswith("SyntaxError: ")
    assert "x = (" in described["traceback"]


def run_python(code: str, cwd: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-P", "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_helper_with_stale_bytecode_is_compiled_from_source(tmp_path):
    helper = tmp_path / "helper.py"
    helper.write_text("VALUE = 1\n")
    py_compile.compile(str(helper), cfile=str(tmp_path / "__pycache__" / f"helper.{sys.implementation.cache_tag}.pyc"))
    stamp = helper.stat().st_mtime_ns
    helper.write_text("VALUE = 2\n")  # same size, same modification time: the .pyc looks valid
    os.utime(helper, ns=(stamp, stamp))
    (tmp_path / "scorers.py").write_text("from helper import VALUE\n")

    result = run_python(
        f"""
        import json, os
        from tui_eval.workbench.worker import import_scorer_module, user_module_files
        module = import_scorer_module({str(tmp_path / "scorers.py")!r})
        print(json.dumps({{"value": module.VALUE, "files": user_module_files()}}))
        """,
        tmp_path,
    )

    assert result["value"] == 2
    assert sorted(result["files"]) == [str(tmp_path / "helper.py"), str(tmp_path / "scorers.py")]


def test_module_named_like_stdlib_does_not_replace_it(tmp_path):
    (tmp_path / "json.py").write_text("from tui_eval.genai.scorers import scorer\n\n@scorer\ndef ok(outputs):\n    return 1\n")

    result = run_python(
        f"""
        import json, sys
        from tui_eval.workbench.worker import import_scorer_module
        module = import_scorer_module({str(tmp_path / "json.py")!r})
        print(json.dumps({{"stdlib_intact": hasattr(sys.modules["json"], "dumps"), "name": module.__name__}}))
        """,
        tmp_path,
    )

    assert result["stdlib_intact"] is True
    assert result["name"] != "json"


def test_scorer_module_inside_package_uses_relative_imports(tmp_path):
    package = tmp_path / "evals"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (package / "scorers.py").write_text("from .helpers import double\nVALUE = double(21)\n")

    result = run_python(
        f"""
        import json
        from tui_eval.workbench.worker import import_scorer_module
        module = import_scorer_module({str(package / "scorers.py")!r})
        print(json.dumps({{"value": module.VALUE, "name": module.__name__}}))
        """,
        tmp_path,
    )

    assert result == {"value": 42, "name": "evals.scorers"}


def test_score_cells_traceback_starts_in_user_code():
    @scorer
    def breaks(outputs):
        return {}["missing"]

    (entry,) = prepare_scorers([breaks])

    (cell,) = score_cells(entry, ScoringItem(trace_id="tr-1", outputs="x"))

    stack = cell[5]
    assert stack.startswith("Traceback (most recent call last):")
    first_frame = stack.splitlines()[1]
    # The worker's own frame is left out: the first frame is the scorer's line in this file.
    assert "test_workbench_worker.py" in first_frame
    assert "workbench" + os.sep + "worker.py" not in stack
    assert "KeyError: 'missing'" in stack
