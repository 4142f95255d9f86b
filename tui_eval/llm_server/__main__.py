"""`python -m tui_eval.llm_server --port 0`: the same as `tui-eval serve-llm`."""

import argparse
import logging
import sys

from tui_eval.llm_server.cli import configure_parser, run_serve_llm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui_eval.llm_server",
                                     description="Run the local OpenAI-compatible server on 127.0.0.1.")
    configure_parser(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run_serve_llm(args)


if __name__ == "__main__":
    sys.exit(main())
