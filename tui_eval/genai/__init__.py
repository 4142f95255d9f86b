"""GenAI evaluation: scorers, the scoring core and ``evaluate``, compatible with MLflow 3.

``evaluate`` and ``EvaluationResult`` load pandas, so they are imported on first use; a worker
process that only scores (``tui_eval.genai.scoring``) never pays for that import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tui_eval.genai.scorers import Scorer, scorer

if TYPE_CHECKING:
    from tui_eval.genai.evaluation import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "Scorer", "evaluate", "scorer"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvaluationResult"):
        from tui_eval.genai import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'tui_eval.genai' has no attribute {name!r}")
