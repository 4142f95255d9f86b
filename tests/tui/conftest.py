"""Fixtures of the TUI tests: stores with fixed ids and times, scorer modules, screen text."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# The list shows local times; UTC makes them the same on every machine.
os.environ["TZ"] = "UTC"
time.tzset()

from tui_fixtures import build_store, sample_traces  # noqa: E402

SCORERS = '''
from tui_eval.genai.scorers import scorer


@scorer
def exact_match(outputs):
    return "refund" not in str(outputs)


@scorer
def length(outputs):
    return len(str(outputs)) / 100
'''


@pytest.fixture
def sample_store(tmp_path: Path) -> Path:
    """A store of the twelve sample traces (markup look-alikes, wide text, an error, escapes)."""
    return build_store(tmp_path / "traces.db", sample_traces())


@pytest.fixture
def scorer_file(tmp_path: Path) -> Path:
    directory = tmp_path / "scorers"
    directory.mkdir()
    path = directory / "my_scorers.py"
    path.write_text(SCORERS)
    return path


@pytest.fixture
def anyio_backend() -> str:
    """Pilot tests run on asyncio, through anyio's pytest plugin (anyio comes with openai's httpx)."""
    return "asyncio"
