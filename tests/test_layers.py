"""The headless core never imports Textual, and `tui-eval --help` stays light."""

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import tui_eval",
        "import tui_eval.genai",
        "import tui_eval.workbench",
        "import tui_eval.store",
        "import tui_eval.entities",
    ],
)
def test_core_module_does_not_import_textual(statement):
    modules = _modules_after(statement)
    assert "textual" not in modules, f"{statement} imported textual"


def test_cli_help_imports_neither_textual_nor_pandas():
    modules = _modules_after("import sys\nfrom tui_eval import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass")
    assert "textual" not in modules
    assert "pandas" not in modules


def test_entities_use_the_standard_library_only():
    modules = _modules_after("import tui_eval.entities")
    third_party = {name.split(".")[0] for name in modules} & {"pandas", "numpy", "pydantic", "textual", "rich", "openai"}
    assert third_party == set()
