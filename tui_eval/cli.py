"""The ``tui-eval`` command.

Each subcommand lives in the module that owns its feature and is imported only when that
subcommand runs, so ``tui-eval --help`` stays fast and imports neither Textual nor pandas.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tui_eval import __version__
from tui_eval.errors import TuiEvalError

# Subcommand name -> (module, help text). For a subcommand such as "serve-llm" the module
# provides add_serve_llm_parser(subparsers) and run_serve_llm(args) -> exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "open": ("tui_eval.tui.cli", "open the workbench on a store (the default)"),
    "demo": ("tui_eval.demo_cli", "run the demo: local LLM server, demo traces, workbench"),
    "generate": ("tui_eval.generate", "run an app over a dataset once and store its traces"),
    "score": ("tui_eval.score_cli", "score stored traces headless, once or on every save"),
    "traces": ("tui_eval.traces_cli", "list, show, import and export traces"),
    "serve-llm": ("tui_eval.llm_server.cli", "run the local OpenAI-compatible server"),
}
DEFAULT_SUBCOMMAND = "open"


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """Build the parser; only the selected subcommand's module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="tui-eval",
        description="A terminal workbench for developing code-based scorers for LLM applications.",
    )
    parser.add_argument("--version", action="version", version=f"tui-eval {__version__}")
    parser.add_argument("--log-file", metavar="PATH", help="also write log records to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug records")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == selected:
            module = importlib.import_module(module_name)
            getattr(module, f"add_{_python_name(name)}_parser")(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _python_name(subcommand: str) -> str:
    return subcommand.replace("-", "_")


def _select_subcommand(argv: list[str]) -> str | None:
    for arg in argv:
        if arg in SUBCOMMANDS:
            return arg
        if arg in ("-h", "--help", "--version"):
            return None
    return None


def _configure_logging(verbose: bool, log_file: str | None) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, handlers=handlers, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _select_subcommand(argv)
    if selected is None and not any(arg in ("-h", "--help", "--version") for arg in argv):
        selected = DEFAULT_SUBCOMMAND
        argv = [DEFAULT_SUBCOMMAND, *argv]
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.log_file)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        run = getattr(module, f"run_{_python_name(args.command)}")
        return int(run(args) or 0)
    except TuiEvalError as exc:
        print(f"tui-eval {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
