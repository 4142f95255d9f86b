"""`tui-eval demo`: the whole loop on the bundled demo, with no API key and no network.

It records the demo app's traces once (the app talks to the bundled OpenAI-compatible server
on 127.0.0.1 unless ``OPENAI_BASE_URL`` or ``OPENAI_API_KEY`` is set), keeps them in a store
next to the demo, and opens the workbench on ``demo/scorers.py``. Later runs reuse the stored
traces; ``--regenerate`` records them again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tui_eval.errors import TuiEvalError

logger = logging.getLogger(__name__)

DEMO_APP_FUNCTION = "sample_app"
DEMO_RUN_NAME = "demo"


def default_demo_dir() -> Path:
    """The ``demo/`` folder of the checkout this package was installed from."""
    return Path(__file__).resolve().parent.parent / "demo"


def add_demo_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "demo",
        help="run the demo: local LLM server, demo traces, workbench",
        description=(
            "Record the demo support assistant's traces over demo/dataset.jsonl once (through the "
            "bundled OpenAI-compatible server on 127.0.0.1 unless OPENAI_BASE_URL or OPENAI_API_KEY "
            "is set), then open the workbench on demo/scorers.py. Edit and save that file to see "
            "every score recomputed."
        ),
    )
    parser.add_argument("--demo-dir", type=Path, default=None, metavar="DIR",
                        help="folder with app.py, dataset.jsonl and scorers.py (default: the checkout's demo/)")
    parser.add_argument("--store", type=Path, default=None, metavar="PATH",
                        help="trace store for the demo (default: DIR/demo.db)")
    parser.add_argument("--regenerate", action="store_true",
                        help="record the demo traces again even if the store has them")
    parser.add_argument("--headless", action="store_true",
                        help="print the scores instead of opening the workbench (also the case without a terminal)")
    return parser


def demo_paths(demo_dir: Path | None, store: Path | None) -> tuple[Path, Path]:
    """Return the demo folder and the store path, checking that the demo files exist."""
    folder = (demo_dir or default_demo_dir()).resolve()
    missing = [name for name in ("app.py", "dataset.jsonl", "scorers.py") if not (folder / name).is_file()]
    if missing:
        raise TuiEvalError(
            f"demo folder {folder} lacks {', '.join(missing)}: run tui-eval demo from a checkout of "
            "tui_eval (pip install -e .) or pass --demo-dir"
        )
    return folder, (store or folder / "demo.db").resolve()


def find_demo_run(store_path: Path) -> str | None:
    """Return the id of the newest demo run with traces in the store, or None."""
    from tui_eval.store import Store

    if not store_path.exists():
        return None
    with Store(store_path) as store:
        for run in sorted(store.list_runs(), key=lambda item: item.get("created_ms") or 0, reverse=True):
            if run.get("name") == DEMO_RUN_NAME and store.count_traces(run_id=run["run_id"]) > 0:
                return run["run_id"]
    return None


def record_demo_traces(demo_dir: Path, store_path: Path) -> str:
    """Run the demo app over its dataset once and return the run id."""
    from tui_eval import generate, tracing

    tracing.set_tracking_uri(str(store_path))
    app = generate.load_app(f"{demo_dir / 'app.py'}:{DEMO_APP_FUNCTION}")
    rows, problems = generate.read_dataset(demo_dir / "dataset.jsonl")
    for problem in problems:
        print(f"{demo_dir / 'dataset.jsonl'}:{problem.location}: skipped: {problem.message}", file=sys.stderr)
    summary = generate.generate(app, rows, run_name=DEMO_RUN_NAME)
    print(generate.format_summary(summary))
    return summary.run_id


def run_demo(args: argparse.Namespace) -> int:
    demo_dir, store_path = demo_paths(args.demo_dir, args.store)
    run_id = None if args.regenerate else find_demo_run(store_path)
    if run_id is None:
        print(f"Recording the demo traces into {store_path} ...")
        run_id = record_demo_traces(demo_dir, store_path)
    else:
        print(f"Using the demo traces of run {run_id} in {store_path} (--regenerate records them again).")

    scorers_path = demo_dir / "scorers.py"
    if args.headless or not sys.stdout.isatty():
        if not args.headless:
            print("No terminal: printing the demo scores instead of opening the workbench.")
        from tui_eval import score_cli

        score_args = argparse.Namespace(
            scorers=str(scorers_path), store=str(store_path), run_id=run_id, filter_string=None,
            format="table", only_failed=False, fail_under=[], watch=False, timeout=10.0,
        )
        return score_cli.run_score(score_args)

    from tui_eval.tui.cli import run_app

    return run_app(store_path, run_id=run_id, scorers_path=scorers_path)
