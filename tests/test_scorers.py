"""The @scorer decorator, the Scorer class and argument injection by parameter name."""

from __future__ import annotations

import inspect

import pydantic
import pytest

from tui_eval.entities import AssessmentSource, Feedback
from tui_eval.errors import InvalidParameterError
from tui_eval.genai import Scorer, scorer
from tui_eval.genai.scorers import ScorerKind, ScorerResultError, ScorerSignatureError
from tui_eval.genai.scoring import ScoringItem, run_scorer


def test_bare_decorator_returns_scorer_instance():
    @scorer
    def response_length(outputs: str) -> int:
        return len(outputs)

    assert isinstance(response_length, Scorer)
    assert response_length.name == "response_length"
    assert response_length.kind is ScorerKind.DECORATOR
    assert response_length.aggregations is None
    assert response_length.description is None


def test_decorator_with_options():
    def spread(values):
        return max(values) - min(values)

    @scorer(name="length", description="word count", aggregations=["min", "p90", spread])
    def response_length(outputs: str) -> int:
        return len(outputs.split())

    assert response_length.name == "length"
    assert response_length.description == "word count"
    assert response_length.aggregations == ["min", "p90", spread]


def test_decorated_signature_shows_user_parameters():
    @scorer
    def exact_match(outputs: str, expectations: dict, *, trace=None) -> bool:
        return outputs == expectations["expected_response"]

    parameters = inspect.signature(exact_match.__call__).parameters
    assert list(parameters) == ["outputs", "expectations", "trace"]
    assert parameters["outputs"].annotation in (str, "str")


def test_two_decorated_scorers_keep_own_signatures():
    @scorer
    def first(outputs):
        return 1

    @scorer
    def second(inputs, trace):
        return 2

    assert list(inspect.signature(first.__call__).parameters) == ["outputs"]
    assert list(inspect.signature(second.__call__).parameters) == ["inputs", "trace"]


def test_direct_call_returns_raw_value():
    @scorer
    def echo(outputs):
        return {"raw": outputs}

    # Calling the scorer is calling the function: no checks, no conversion.
    assert echo(outputs="x") == {"raw": "x"}
    assert echo("y") == {"raw": "y"}


def test_run_injects_only_named_parameters():
    received = {}

    @scorer
    def spy(expectations, inputs):
        received.update(inputs=inputs, expectations=expectations)
        return True

    result = spy.run(inputs={"q": 1}, outputs="o", expectations={"e": 2}, trace=None)
    assert result is True
    assert received == {"inputs": {"q": 1}, "expectations": {"e": 2}}


def test_run_without_parameters_receives_nothing():
    @scorer
    def placeholder_metric() -> int:
        return 1

    assert placeholder_metric.run(inputs={"a": 1}, outputs="x") == 1


def test_var_keyword_parameter_receives_nothing():
    received = {}

    @scorer
    def greedy(**kwargs):
        received.update(kwargs)
        return 0

    assert greedy.run(inputs={"a": 1}, outputs="x", expectations={}) == 0
    assert received == {}


def test_session_parameter_receives_none():
    @scorer
    def session_aware(outputs, session=None):
        return session is None

    assert session_aware.run(outputs="x") is True


def test_other_parameter_with_default_keeps_default():
    @scorer
    def thresholded(outputs, limit=3):
        return len(outputs) <= limit

    assert thresholded.run(outputs="abcd") is False


def test_unknown_parameter_error_lists_available_names():
    @scorer
    def needs_question(question):
        return question

    with pytest.raises(ScorerSignatureError) as caught:
        needs_question.run(outputs="x")
    message = str(caught.value)
    assert "'question'" in message
    for name in ("inputs", "outputs", "expectations", "trace", "session"):
        assert name in message

    [cell] = run_scorer(needs_question, ScoringItem("tr-1", outputs="x"))
    assert cell.error.error_code == "SCORER_ERROR"
    assert "'question'" in cell.error.error_message
    assert "expectations" in cell.error.error_message


def test_positional_only_parameter_is_an_error():
    @scorer
    def positional(outputs, /):
        return 1

    [cell] = run_scorer(positional, ScoringItem("tr-1", outputs="x"))
    assert cell.error.error_code == "SCORER_ERROR"
    assert "positional-only" in cell.error.error_message


def test_run_renames_single_unnamed_feedback():
    @scorer
    def is_short(outputs):
        return Feedback(value=len(outputs.split()) <= 5)

    result = is_short.run(outputs="a b c")
    assert isinstance(result, Feedback)
    assert result.name == "is_short"
    assert result.value is True


def test_run_rejects_dict_result():
    @scorer
    def as_dict(outputs):
        return {"score": 1}

    with pytest.raises(ScorerResultError) as caught:
        as_dict.run(outputs="x")
    assert "dict" in str(caught.value)


class ResponseQualityScorer(Scorer):
    name: str = "response_quality"
    min_length: int = 50
    required_sections: list[str] | None = None

    def __call__(self, outputs: str) -> Feedback:
        issues = []
        if len(outputs.split()) < self.min_length:
            issues.append(f"fewer than {self.min_length} words")
        for section in self.required_sections:
            if section not in outputs:
                issues.append(f"missing section {section}")
        if issues:
            return Feedback(value=False, rationale="; ".join(issues))
        return Feedback(value=True, rationale="all checks passed")


def test_class_scorer_fields_are_constructor_arguments():
    quality = ResponseQualityScorer(required_sections=["# Summary", "# Sources"], min_length=3)
    assert quality.name == "response_quality"
    assert quality.kind is ScorerKind.CLASS
    assert quality.required_sections == ["# Summary", "# Sources"]
    assert quality.min_length == 3
    assert list(inspect.signature(quality.__call__).parameters) == ["outputs"]


def test_class_scorer_rejects_misspelt_field():
    with pytest.raises(pydantic.ValidationError):
        ResponseQualityScorer(required_section=["# Summary"])


def test_class_scorer_validates_field_types():
    with pytest.raises(pydantic.ValidationError):
        ResponseQualityScorer(min_length="many")


def test_class_scorer_without_name_fails():
    class Nameless(Scorer):
        def __call__(self, outputs):
            return 1

    with pytest.raises(pydantic.ValidationError):
        Nameless()
    assert Nameless(name="given").name == "given"


def test_class_scorer_run_returns_named_feedback():
    quality = ResponseQualityScorer(required_sections=["# Summary"], min_length=2)
    result = quality.run(outputs="# Summary\nall good here")
    assert result.name == "response_quality"
    assert result.value is True


def test_class_scorer_without_call_is_error_cell():
    class Unfinished(Scorer):
        name: str = "unfinished"

    [cell] = run_scorer(Unfinished(), ScoringItem("tr-1", outputs="x"))
    assert cell.error.error_code == "SCORER_ERROR"
    assert "NotImplementedError" in cell.error.error_message
    assert "__call__" in cell.error.error_message


def test_class_scorer_none_sections_is_error_cell():
    # The documented example iterates required_sections without a None check.
    [cell] = run_scorer(ResponseQualityScorer(), ScoringItem("tr-1", outputs="short"))
    assert cell.name == "response_quality"
    assert cell.error.error_code == "SCORER_ERROR"
    assert "TypeError" in cell.error.error_message


def test_class_scorer_instances_do_not_share_state():
    first = ResponseQualityScorer(required_sections=["a"])
    second = ResponseQualityScorer(required_sections=["b"])
    first.required_sections.append("c")
    assert second.required_sections == ["b"]


def test_async_decorated_scorer_is_awaited():
    @scorer
    async def slow_length(outputs):
        return len(outputs)

    assert inspect.iscoroutinefunction(slow_length.original_func)
    assert slow_length.run(outputs="abcd") == 4


def test_async_class_scorer_is_awaited():
    class AsyncScorer(Scorer):
        name: str = "async_scorer"

        async def __call__(self, outputs):
            return Feedback(value=outputs.upper(), source=AssessmentSource("LLM_JUDGE", "judge-1"))

    [cell] = run_scorer(AsyncScorer(), ScoringItem("tr-1", outputs="ok"))
    assert cell.name == "async_scorer"
    assert cell.value == "OK"
    assert cell.source.source_type == "LLM_JUDGE"


def test_decorator_rejects_non_callable():
    with pytest.raises(InvalidParameterError):
        scorer(42)
