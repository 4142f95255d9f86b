"""tui_eval: a terminal workbench for developing code-based scorers for LLM applications."""

__version__ = "0.1.0"
