"""Scorers for the demo traces, one of each form users write (as in MLflow's scorer examples).

Open them in the workbench and edit any of them: every score recomputes on save.

    tui-eval demo            # or: tui-eval score demo/scorers.py
"""

from __future__ import annotations

from typing import Any

from tui_eval.entities import Feedback, SpanType, Trace
from tui_eval.genai.scorers import Scorer, scorer

# Limits for the CHAT_MODEL span check.
MAX_LLM_SECONDS = 5.0
MAX_TOTAL_TOKENS = 150


@scorer
def exact_match(outputs: str, expectations: dict[str, Any]) -> bool | None:
    """bool: the response equals the expected response (rows without one get no score)."""
    expected = expectations.get("expected_response")
    if expected is None:
        return None
    return outputs == expected


@scorer
def response_length(outputs: str) -> int:
    """number: the response's length in words."""
    return len(outputs.split())


@scorer(aggregations=["mean", "min", "max"])
def is_concise(outputs: str, expectations: dict[str, Any]) -> bool | None:
    """bool with aggregations: the response fits the row's max_length (characters)."""
    max_length = expectations.get("max_length")
    if max_length is None:
        return None
    return len(outputs) <= max_length


@scorer
def keyword_presence(outputs: str, expectations: dict[str, Any]) -> Feedback:
    """yes/no Feedback with a rationale: every expected keyword appears (case-insensitive)."""
    keywords = expectations.get("expected_keywords")
    print(f"checking keywords: {keywords}")  # shows in the workbench's log pane
    if not keywords:
        return Feedback(value="yes", rationale="No keywords were expected.")
    missing = [keyword for keyword in keywords if keyword.lower() not in outputs.lower()]
    if missing:
        return Feedback(value="no", rationale=f"Missing keywords: {', '.join(missing)}.")
    return Feedback(value="yes", rationale="All expected keywords are present.")


@scorer
def response_checks(outputs: str) -> list[Feedback]:
    """Return several named checks from one scorer, as a list of Feedback."""
    return [
        Feedback(name="is_not_empty", value="yes" if outputs.strip() else "no"),
        Feedback(name="response_char_length", value=len(outputs)),
        Feedback(
            name="asks_follow_up",
            value=outputs.rstrip().endswith("?"),
            rationale="The response ends with a question to the customer.",
        ),
    ]


class ResponseQuality(Scorer):
    """Class-based scorer with settings: enough words and none of the phrases a support response should avoid."""

    name: str = "response_quality"
    min_words: int = 8
    banned_phrases: list[str] = ["I'm not sure I understood", "Could you tell me a bit more"]

    def __call__(self, outputs: str) -> Feedback:
        problems = []
        word_count = len(outputs.split())
        if word_count < self.min_words:
            problems.append(f"only {word_count} words, fewer than {self.min_words}")
        for phrase in self.banned_phrases:
            if phrase.lower() in outputs.lower():
                problems.append(f"contains {phrase!r}")
        if problems:
            return Feedback(value=False, rationale="; ".join(problems))
        return Feedback(value=True, rationale="Long enough and free of fallback phrases.")


response_quality = ResponseQuality()


@scorer
def llm_call_efficiency(trace: Trace) -> Feedback:
    """Reads the CHAT_MODEL span: its latency and token usage must stay under the limits."""
    llm_spans = trace.search_spans(span_type=SpanType.CHAT_MODEL)
    if not llm_spans:
        return Feedback(value="no", rationale="The trace has no CHAT_MODEL span.")
    span = llm_spans[0]
    seconds = (span.end_time_ns - span.start_time_ns) / 1e9
    usage = span.get_attribute("mlflow.chat.tokenUsage") or {}
    total_tokens = usage.get("total_tokens")

    problems = []
    if seconds > MAX_LLM_SECONDS:
        problems.append(f"took {seconds:.2f}s, over {MAX_LLM_SECONDS}s")
    if total_tokens is None:
        problems.append("reported no token usage")
    elif total_tokens > MAX_TOTAL_TOKENS:
        problems.append(f"used {total_tokens} tokens, over {MAX_TOTAL_TOKENS}")
    if problems:
        return Feedback(value="no", rationale="The LLM call " + " and ".join(problems) + ".")
    return Feedback(value="yes", rationale=f"The LLM call took {seconds:.3f}s and used {total_tokens} tokens.")
