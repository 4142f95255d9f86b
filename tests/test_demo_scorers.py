"""demo/scorers.py: every scorer form runs on real demo traces and finds both passes and failures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import tui_eval
import tui_eval.openai
from tui_eval.entities import Feedback
from tui_eval.genai import evaluate
from tui_eval.genai.scoring import discover_scorers, item_from_trace, run_scorer
from tui_eval.generate import generate, load_app, read_dataset
from tui_eval.llm_server import LLMServer
from tui_eval.tracing import provider, recorder

ROOT = Path(__file__).resolve().parents[1]
SCORER_NAMES = {"exact_match", "response_length", "is_concise", "keyword_presence", "response_checks",
                "response_quality", "llm_call_efficiency"}


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_traces(tmp_path_factory):
    """Generate the demo traces once, through the demo app and the local server."""
    monkeypatch = pytest.MonkeyPatch()
    store_path = tmp_path_factory.mktemp("demo") / "demo.db"
    with LLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("TUI_EVAL_PROGRESS", "0")
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        provider.reset()
        recorder.clear()
        tui_eval.set_tracking_uri(store_path)
        app = load_app(f"{ROOT / 'demo' / 'app.py'}:sample_app")
        rows, problems = read_dataset(ROOT / "demo" / "dataset.jsonl")
        assert problems == []
        summary = generate(app, rows)
        traces = tui_eval.search_traces(run_id=summary.run_id, return_type="list")
    tui_eval.openai.autolog(disable=True, silent=True)
    monkeypatch.undo()
    yield store_path, traces
    provider.reset()
    recorder.clear()


@pytest.fixture(scope="module")
def scorers_module():
    return load_module(ROOT / "demo" / "scorers.py", "demo_scorers_under_test")


@pytest.fixture(scope="module")
def results(demo_traces, scorers_module):
    store_path, traces = demo_traces
    provider.reset()
    tui_eval.set_tracking_uri(store_path)
    return evaluate(data=traces, scorers=discover_scorers(scorers_module))


def test_discovers_every_scorer(scorers_module):
    assert {s.name for s in discover_scorers(scorers_module)} == SCORER_NAMES


def test_no_scorer_errors(results):
    assert all(counts["n_error"] == 0 for counts in results.counts.values()), results.counts


@pytest.mark.parametrize("metric", ["exact_match/mean", "keyword_presence/mean", "is_concise/mean",
                                    "response_quality/mean", "llm_call_efficiency/mean"])
def test_metrics_find_passes_and_failures(results, metric):
    assert 0.0 < results.metrics[metric] < 1.0, results.metrics


def test_list_scorer_names_and_aggregations(results):
    for name in ("is_not_empty/mean", "response_char_length/mean", "asks_follow_up/mean",
                 "is_concise/min", "is_concise/max", "response_length/mean"):
        assert name in results.metrics


def test_rows_without_expectations_get_no_score(results):
    counts = results.counts["exact_match"]
    assert counts["n_none"] >= 1
    assert counts["n_scored"] + counts["n_none"] == 42


def test_keyword_rationale_names_missing_keywords(demo_traces, scorers_module):
    _, traces = demo_traces
    arithmetic = next(t for t in traces if t.data.spans[0].inputs["messages"][0]["content"] == "What is 2+2?")
    (feedback,) = run_scorer(scorers_module.keyword_presence, item_from_trace(arithmetic))
    assert feedback.value == "no"
    assert "four" in feedback.rationale


def test_llm_span_scorer_reads_latency_and_tokens(demo_traces, scorers_module):
    _, traces = demo_traces
    item = item_from_trace(traces[0])
    (feedback,) = run_scorer(scorers_module.llm_call_efficiency, item)
    usage = traces[0].search_spans(span_type="CHAT_MODEL")[0].get_attribute("mlflow.chat.tokenUsage")
    assert feedback.value == "yes"
    assert f"used {usage['total_tokens']} tokens" in feedback.rationale


def test_llm_span_scorer_without_chat_span(scorers_module, tmp_path):
    @tui_eval.trace
    def no_llm(text):
        return text

    provider.reset()
    tui_eval.set_tracking_uri(tmp_path / "plain.db")
    result = scorers_module.llm_call_efficiency.run(trace=_trace_of(no_llm, "hi"))
    assert isinstance(result, Feedback)
    assert result.value == "no"


def _trace_of(function, *args):
    function(*args)
    return tui_eval.get_trace(tui_eval.get_last_active_trace_id())


def test_class_scorer_settings(scorers_module):
    strict = scorers_module.ResponseQuality(min_words=50)
    feedback = strict(outputs="A microwave costs $100.")
    assert feedback.value is False
    assert "fewer than 50" in feedback.rationale
    assert scorers_module.response_quality(outputs="I'm not sure I understood that, sorry about this one").value is False
