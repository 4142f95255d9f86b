"""OpenAI SDK instrumentation: ``tui_eval.openai.autolog()`` mirrors ``mlflow.openai.autolog()``."""

from tui_eval.openai.autolog import autolog, is_enabled

__all__ = ["autolog", "is_enabled"]
