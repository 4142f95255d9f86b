"""The local OpenAI-compatible HTTP server: routing, latency, injected faults, SSE streaming.

It is built on the standard library's ThreadingHTTPServer, speaks HTTP/1.1 with keep-alive,
and binds 127.0.0.1 only. Streams use chunked transfer encoding, one chunk per server-sent event.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tui_eval.errors import InvalidParameterError
from tui_eval.llm_server import payloads
from tui_eval.llm_server.payloads import RequestError

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Faults a test can inject, per server or per request (header X-Tui-Eval-Fault):
#   429      rate-limit error response
#   500      server error response
#   drop     close the connection: mid-stream after a few events, or before any response
#   timeout  hold the request for hang_s before answering (past any short client timeout)
#   stall    stream a few events, then hold the stream for hang_s
FAULTS = ("429", "500", "drop", "timeout", "stall")
FAULT_HEADER = "X-Tui-Eval-Fault"
LATENCY_HEADER = "X-Tui-Eval-Latency-Ms"
REQUEST_LOG_SIZE = 1000


class LLMServer:
    """A deterministic OpenAI-compatible server on 127.0.0.1, run in a background thread.

    Use it as a context manager or call start() and stop(). The attributes latency_ms, fault
    and fault_rate may be changed while it runs; each request reads them when it arrives.
    fault_rate (0 to 1) limits a fault to a share of requests picked by a hash of the request
    body, so a given request either always or never fails.
    """

    def __init__(
        self,
        port: int = 0,
        latency_ms: float = 0,
        fault: str | None = None,
        *,
        fault_rate: float = 1.0,
        hang_s: float = 30.0,
        drop_after_events: int = 3,
        api_key: str | None = None,
    ) -> None:
        check_fault(fault)
        if latency_ms < 0:
            raise InvalidParameterError(f"latency_ms must be >= 0, got {latency_ms!r}.")
        if not 0.0 <= fault_rate <= 1.0:
            raise InvalidParameterError(f"fault_rate must be between 0 and 1, got {fault_rate!r}.")
        self.requested_port = port
        self.latency_ms = latency_ms
        self.fault = fault
        self.fault_rate = fault_rate
        self.hang_s = hang_s
        self.drop_after_events = drop_after_events
        # When set, requests must carry "Authorization: Bearer <api_key>" or get a 401.
        self.api_key = api_key
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LLMServer:
        """Bind the port and serve in a daemon thread; return self."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((HOST, self.requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"tui-eval-llm-server:{self.port}", daemon=True,
        )
        self._thread.start()
        logger.info("LLM server listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        logger.info("LLM server on port %s stopped", httpd.server_address[1])

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the free port the OS picked when asked for 0)."""
        if self._httpd is None:
            raise InvalidParameterError("The LLM server is not running; call start() first.")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, http://127.0.0.1:PORT/v1."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- used by the handler -----------------------------------------------------------------

    def wait(self, seconds: float) -> bool:
        """Sleep up to seconds; return True early when the server is stopping."""
        if seconds <= 0:
            return self._stopping.is_set()
        return self._stopping.wait(seconds)

    def fault_for(self, header_value: str | None, body: bytes) -> str | None:
        """Return the fault for one request: the header's, else the server's if the rate picks it."""
        if header_value:
            return header_value.strip().lower()
        fault = self.fault
        if fault is None or self.fault_rate >= 1.0:
            return fault
        bucket = zlib.crc32(body) % 10_000
        return fault if bucket < self.fault_rate * 10_000 else None


def check_fault(fault: str | None) -> None:
    """Raise InvalidParameterError unless fault is None or one of FAULTS."""
    if fault is not None and fault not in FAULTS:
        raise InvalidParameterError(f"Invalid fault {fault!r}; use one of: {', '.join(FAULTS)}.")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], llm: LLMServer) -> None:
        self.llm = llm
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request instead of printing its traceback to stderr."""
        logger.debug("Request from %s failed", client_address, exc_info=True)

    def close_open_connections(self) -> None:
        """Shut down keep-alive connections, whose handler threads would otherwise keep serving."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tui-eval-llm/1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK would add about 40 ms to each response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.address_string(), format % args)

    # -- routing -----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        path = urlsplit(self.path).path.rstrip("/")
        self._record(b"")
        if path == "/v1/models":
            self._send_json(200, payloads.models_list())
        elif path.startswith("/v1/models/"):
            model_id = path[len("/v1/models/"):]
            self._send_json(200, payloads.model_object(model_id))
        elif path in ("", "/health"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_not_found(path)

    def do_POST(self) -> None:  # noqa: N802 - the base class's naming
        path = urlsplit(self.path).path.rstrip("/")
        raw = self._read_body()
        if raw is None:
            return
        self._record(raw)
        routes = {
            "/v1/chat/completions": self._chat_completions,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
            "/v1/responses": self._responses,
        }
        route = routes.get(path)
        if route is None:
            self._send_not_found(path)
            return
        if not self._authorized():
            self._send_json(401, payloads.error_body(
                "Incorrect API key provided.", error_type="invalid_request_error", code="invalid_api_key"))
            return
        try:
            body = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_json(400, payloads.error_body(
                f"The request body is not valid JSON: {exc}.", error_type="invalid_request_error"))
            return

        fault = self.server.llm.fault_for(self.headers.get(FAULT_HEADER), raw)
        if fault is not None and fault not in FAULTS:
            self._send_json(400, payloads.error_body(
                f"Invalid {FAULT_HEADER} value {fault!r}; use one of: {', '.join(FAULTS)}.",
                error_type="invalid_request_error"))
            return
        if self._apply_latency():
            return
        if fault in ("429", "500", "timeout") or (fault == "drop" and not _wants_stream(body)):
            if self._apply_request_fault(fault):
                return
            fault = None

        try:
            route(body, fault)
        except RequestError as exc:
            self._send_json(exc.status, exc.body())

    def _chat_completions(self, body: Any, fault: str | None) -> None:
        payloads.validate_chat_request(body)
        if _wants_stream(body):
            self._send_events(_data_events(payloads.chat_completion_chunks(body)), fault, done_marker=True)
        else:
            self._send_json(200, payloads.chat_completion(body))

    def _completions(self, body: Any, fault: str | None) -> None:
        payloads.validate_completion_request(body)
        if _wants_stream(body):
            self._send_events(_data_events(payloads.text_completion_chunks(body)), fault, done_marker=True)
        else:
            self._send_json(200, payloads.text_completion(body))

    def _embeddings(self, body: Any, fault: str | None) -> None:
        self._send_json(200, payloads.embeddings(body))

    def _responses(self, body: Any, fault: str | None) -> None:
        if _wants_stream(body):
            payloads.responses_messages(body)  # validate before the 200 status goes out
            events = ((e["type"], e) for e in payloads.response_events(body))
            self._send_events(events, fault, done_marker=False)
        else:
            self._send_json(200, payloads.response_object(body))

    # -- faults and latency --------------------------------------------------------------------

    def _apply_latency(self) -> bool:
        """Sleep the configured latency; return True when the server stopped meanwhile."""
        latency_ms = self.server.llm.latency_ms
        header = self.headers.get(LATENCY_HEADER)
        if header:
            try:
                latency_ms = float(header)
            except ValueError:
                logger.warning("Ignoring invalid %s header %r", LATENCY_HEADER, header)
        if self.server.llm.wait(latency_ms / 1000.0):
            self.close_connection = True
            return True
        return False

    def _apply_request_fault(self, fault: str) -> bool:
        """Apply a fault that replaces the response; return True when the request is finished."""
        llm = self.server.llm
        if fault == "429":
            self._send_json(429, payloads.error_body(
                "Rate limit reached for requests (fault injected by the tui_eval LLM server).",
                error_type="requests", code="rate_limit_exceeded"))
            return True
        if fault == "500":
            self._send_json(500, payloads.error_body(
                "The server had an error while processing your request (fault injected by the "
                "tui_eval LLM server).", error_type="server_error"))
            return True
        if fault == "drop":
            logger.debug("Dropping the connection before any response (injected fault)")
            self._drop_connection()
            return True
        # "timeout": hold the request, then answer normally if the client is still there.
        if llm.wait(llm.hang_s):
            self.close_connection = True
            return True
        return False

    def _drop_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- writing -------------------------------------------------------------------------------

    def _send_events(self, events: Iterable[tuple[str | None, Any]], fault: str | None, *, done_marker: bool) -> None:
        """Stream events as SSE with chunked encoding, applying a drop or stall fault midway."""
        llm = self.server.llm
        iterator = iter(events)
        first = next(iterator)  # build the first event before the 200 goes out, so errors still get a 4xx
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", payloads.new_id("req_"))
        self.end_headers()
        try:
            sent = 0
            for name, data in _chain_first(first, iterator):
                if fault in ("drop", "stall") and sent == llm.drop_after_events:
                    if fault == "drop":
                        logger.debug("Dropping the stream after %d events (injected fault)", sent)
                        self._drop_connection()
                        return
                    if llm.wait(llm.hang_s):
                        self.close_connection = True
                        return
                self._write_chunk(_sse(name, data))
                sent += 1
            if done_marker:
                self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            logger.debug("Client went away mid-stream: %s", exc)
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", payloads.new_id("req_"))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            logger.debug("Client went away before the response was written: %s", exc)
            self.close_connection = True

    def _send_not_found(self, path: str) -> None:
        self._send_json(404, payloads.error_body(
            f"Unknown endpoint {path!r}; this server implements /v1/chat/completions, /v1/completions, "
            "/v1/responses, /v1/embeddings and /v1/models.", error_type="invalid_request_error",
            code="unknown_url"))

    # -- reading -------------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_json(411, payloads.error_body(
                "Chunked request bodies are not supported; send Content-Length.",
                error_type="invalid_request_error"))
            self.close_connection = True
            return None
        try:
            length = int(length_header or 0)
        except ValueError:
            self._send_json(400, payloads.error_body(
                f"Invalid Content-Length {length_header!r}.", error_type="invalid_request_error"))
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self) -> bool:
        expected = self.server.llm.api_key
        if expected is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {expected}"

    def _record(self, raw: bytes) -> None:
        """Append the request to the server's log, without its Authorization header."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "api-key")}
        self.server.llm.request_log.append({
            "time": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": raw.decode("utf-8", "replace"),
        })


def _wants_stream(body: Any) -> bool:
    return isinstance(body, dict) and body.get("stream") is True


def _data_events(chunks: Iterable[dict[str, Any]]) -> Iterable[tuple[None, dict[str, Any]]]:
    return ((None, chunk) for chunk in chunks)


def _chain_first(first: Any, rest: Iterable[Any]) -> Iterable[Any]:
    yield first
    yield from rest


def _sse(name: str | None, data: Any) -> bytes:
    text = json.dumps(data, ensure_ascii=False)
    prefix = f"event: {name}\n" if name else ""
    return f"{prefix}data: {text}\n\n".encode("utf-8")
