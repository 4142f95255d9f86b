"""`tui-eval serve-llm`: run the local OpenAI-compatible server in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from tui_eval.errors import TuiEvalError


def add_serve_llm_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `serve-llm` subcommand to an argparse subparsers object."""
    parser = sub.add_parser(
        "serve-llm",
        help="run the local OpenAI-compatible server (deterministic answers, no network)",
        description=(
            "Serve /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings and /v1/models "
            "on 127.0.0.1 with deterministic support-assistant answers. Prints the base URL on the "
            "first line of stdout, then runs until interrupted."
        ),
    )
    configure_parser(parser)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the server's options to a parser (shared with `python -m tui_eval.llm_server`)."""
    from tui_eval.llm_server.server import FAULTS

    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1; 0 (the default) picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay added before each response, in milliseconds (default 0)")
    parser.add_argument("--fault", choices=FAULTS, default=None,
                        help="inject a fault into requests: 429, 500, drop (close the connection, "
                             "mid-stream for streams), timeout (hold the request for --hang-s), "
                             "stall (hold a stream midway for --hang-s)")
    parser.add_argument("--fault-rate", type=float, default=1.0,
                        help="share of requests (0 to 1) that get --fault, picked by a hash of the "
                             "request body (default 1)")
    parser.add_argument("--hang-s", type=float, default=30.0,
                        help="how long the timeout and stall faults hold a request, in seconds (default 30)")
    parser.add_argument("--api-key", default=None,
                        help="require this bearer key on every request (default: accept any key)")


def run_serve_llm(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code."""
    from tui_eval.llm_server.server import LLMServer

    try:
        server = LLMServer(
            port=args.port,
            latency_ms=args.latency_ms,
            fault=args.fault,
            fault_rate=args.fault_rate,
            hang_s=args.hang_s,
            api_key=args.api_key,
        )
        server.start()
    except (TuiEvalError, OSError) as exc:
        print(f"tui-eval serve-llm: cannot start the server: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(server.base_url, flush=True)
    print(f"Serving OpenAI-compatible API at {server.base_url}; press Ctrl+C to stop.", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return 0
