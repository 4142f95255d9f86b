"""The ``tui-eval open`` subcommand: argument parsing here, Textual imported only when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_open_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``open`` to the subcommands; importing this module does not import Textual."""
    parser = sub.add_parser(
        "open",
        help="open the workbench on stored traces (the default command)",
        description=(
            "Browse stored traces, open their spans, and score them live: with --scorers, every "
            "save of the scorer module recomputes the scores on screen. Press ? in the app for keys."
        ),
    )
    add_open_arguments(parser)
    parser.set_defaults(func=run_open)
    return parser


def add_open_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``open``; shared with the top-level parser when ``open`` is the default."""
    parser.add_argument(
        "--store",
        metavar="PATH",
        type=Path,
        default=None,
        help="trace store file (default: $TUI_EVAL_STORE, else ./tui_eval.db)",
    )
    parser.add_argument("--run", metavar="RUN_ID", dest="run_id", default=None, help="show only the traces of this run")
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        dest="filter_string",
        default=None,
        help="show only traces matching this search_traces filter, e.g. \"attributes.status = 'OK'\"",
    )
    parser.add_argument(
        "--scorers",
        metavar="FILE",
        type=Path,
        default=None,
        help="Python module of scorers to run on the traces, rescored on every save",
    )


def run_app(
    store_path: Path | None,
    *,
    run_id: str | None = None,
    filter_string: str | None = None,
    scorers_path: Path | None = None,
) -> int:
    """Run the app in this terminal until the user quits; return the exit code."""
    from tui_eval.store import default_store_path

    if scorers_path is not None and not scorers_path.is_file():
        print(f"tui-eval: scorer module {scorers_path} not found: pass an existing .py file to --scorers", file=sys.stderr)
        return 2
    if not sys.stdout.isatty():
        print("tui-eval: open needs a terminal; use `tui-eval traces list` or `tui-eval score` in scripts", file=sys.stderr)
        return 2
    from tui_eval.tui.app import TuiEvalApp

    app = TuiEvalApp(
        store_path if store_path is not None else default_store_path(),
        run_id=run_id,
        filter_string=filter_string,
        scorers_path=scorers_path.resolve() if scorers_path is not None else None,
    )
    app.run()
    return app.return_code or 0


def run_open(args: argparse.Namespace) -> int:
    """Entry point of ``tui-eval open``."""
    return run_app(
        getattr(args, "store", None),
        run_id=getattr(args, "run_id", None),
        filter_string=getattr(args, "filter_string", None),
        scorers_path=getattr(args, "scorers", None),
    )
