"""The workshop's FastAPI service, *with* the async mistakes taught in 04_fastapi.ipynb.

Do not copy this code: :mod:`workshop_app_fixed` is the corrected version. Everything is
offline: the "upstream" rates service is a local HTTP server on 127.0.0.1
(:func:`start_upstream`); both apps read its URL from ``app.state.upstream``.

Endpoints:
    GET  /health         cheap: what a load balancer polls every few seconds.
    GET  /report         sleeps with ``time.sleep`` in an ``async def`` (blocks the loop).
    POST /login          derives a password hash on the event loop (CPU-bound, about 100 ms).
    GET  /rates          creates an ``httpx.AsyncClient`` per request (TLS set-up on the loop).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import httpx
from fastapi import FastAPI, Request

app = FastAPI(title="workshop shop")


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.get("/report")
async def report() -> dict:
    time.sleep(0.1)  # noqa: ASYNC251 - the bug this app teaches: a sync call in an async endpoint
    return {"rows": 42}


@app.post("/login")
async def login(user: str, password: str) -> dict:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), user.encode(), 200_000)
    return {"user": user, "token": digest.hex()[:16]}


@app.get("/rates")
async def rates(request: Request) -> dict:
    async with httpx.AsyncClient() as client:  # a new client (and TLS context) per request
        response = await client.get(f"{request.app.state.upstream}/rates", timeout=5)
    return response.json()


_UPSTREAM_SERVER = r"""
import http.server, json, sys

class Rates(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"EUR": 1.0, "USD": 1.08}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Rates)
print(server.server_port, flush=True)
server.serve_forever()
"""


def start_upstream() -> tuple[subprocess.Popen, str]:
    """Start the local rates service on 127.0.0.1, in its own process (as a real upstream
    would be: its threads do not compete with the app's event loop for the GIL).

    Returns:
        ``(process, base_url)``; call ``process.terminate()`` when done.

    Raises:
        RuntimeError: when the server does not report its port within 10 s.
    """
    proc = subprocess.Popen([sys.executable, "-c", _UPSTREAM_SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # the port, once the socket listens
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"the upstream server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line}"
