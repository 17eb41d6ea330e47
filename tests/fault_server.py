"""A real HTTP server on 127.0.0.1 speaking OpenAI chat completions, with injectable faults.

The fault is chosen by a marker in the last user message, so one run can mix them:

* ``[[ok]]``            -> 200 with the answer (and top logprobs when asked);
* ``[[429-once]]``      -> 429 the first time this exact prompt is seen, then 200;
* ``[[500]]``           -> always 500;
* ``[[garbage]]``       -> 200 with a body that is not JSON;
* ``[[timeout]]``       -> sleeps longer than the client's timeout, then 200;
* ``[[refuse]]``        -> 200 with "As an AI, I cannot answer that.";
* ``[[nologprobs]]``    -> 200 with the answer but no logprobs.

The answer is the code after ``ANSWER=`` in the prompt (default ``"1"``). Every request is
recorded (``server.log``: path, marker, Authorization header) so tests can count calls and
check that the API key is sent and nowhere else.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKERS = ("ok", "429-once", "500", "garbage", "timeout", "refuse", "nologprobs")


class FaultServer:
    def __init__(self, sleep_s: float = 2.0):
        self.sleep_s = sleep_s
        self.log: list[dict] = []
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server._handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(self, h, code: int, payload: bytes, ctype="application/json", headers=None):
        try:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def _handle(self, h, body: dict):
        messages = body.get("messages") or []
        prompt = messages[-1]["content"] if messages else ""
        m = re.search(r"\[\[([a-z0-9-]+)\]\]", prompt)
        marker = m.group(1) if m else "ok"
        ans = re.search(r"ANSWER=(\S+)", prompt)
        answer = ans.group(1) if ans else "1"
        with self._lock:
            self.seen[prompt] = self.seen.get(prompt, 0) + 1
            count = self.seen[prompt]
            self.log.append({"path": h.path, "marker": marker, "auth": h.headers.get("Authorization"),
                             "body": body})
        if marker == "500":
            return self._send(h, 500, b'{"error": {"message": "boom", "type": "server_error"}}')
        if marker == "429-once" and count == 1:
            return self._send(h, 429, b'{"error": {"message": "slow down", "type": "rate_limit"}}',
                              headers={"Retry-After": "0"})
        if marker == "garbage":
            return self._send(h, 200, b"<html>not json at all")
        if marker == "timeout":
            time.sleep(self.sleep_s)
        text = "As an AI, I cannot answer that." if marker == "refuse" else answer
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        if body.get("logprobs") and marker not in ("nologprobs", "refuse"):
            top = [{"token": answer, "logprob": math.log(0.7), "bytes": None},
                   {"token": "2" if answer != "2" else "3", "logprob": math.log(0.2), "bytes": None},
                   {"token": "I", "logprob": math.log(0.1), "bytes": None}]
            choice["logprobs"] = {"content": [{"token": answer, "logprob": math.log(0.7), "bytes": None,
                                               "top_logprobs": top[: body.get("top_logprobs") or 1]}]}
        payload = {"id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                   "model": body.get("model", "test"), "choices": [choice],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        self._send(h, 200, json.dumps(payload).encode())
