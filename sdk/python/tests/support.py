"""What the tests run against: a real `meshguard serve` and loopback HTTP receivers."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

CONFORMANCE = ROOT / "sdk" / "conformance"

#: An agent token for tests whose MeshGuard is a Receiver (any well-formed token will do).
TOKEN = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LWFnZW50.c2lnbmF0dXJl"

#: A generous deadline for the server to come up on a loaded 2-core machine.
START_DEADLINE = 60.0


class Server:
    """`meshguard serve` as a subprocess on loopback, with a fresh DATA_DIR and an admin token of ours."""

    def __init__(self, policies: Path) -> None:
        binary = os.environ.get("MESHGUARD_BIN") or str(ROOT / "bin" / "meshguard")
        if not os.access(binary, os.X_OK):
            raise RuntimeError("no meshguard binary at %s: run `make build` or set MESHGUARD_BIN" % binary)
        self._dir = tempfile.TemporaryDirectory(prefix="meshguard-pysdk-")
        self.admin_token = secrets.token_urlsafe(24)
        # PORT must be 1-65535 (0 is refused as a misconfiguration): take free
        # ports, and start again in the rare case another process took one first.
        for attempt in range(3):
            try:
                self._start(binary, policies)
                return
            except _PortTaken:
                if attempt == 2:
                    self._dir.cleanup()
                    raise RuntimeError("meshguard serve: ports taken three times:\n" + "\n".join(self.output))
            except BaseException:
                self._dir.cleanup()
                raise

    def _start(self, binary: str, policies: Path) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "GRPC_PORT": str(free_port()),
            "LOG_FORMAT": "json",
            "DATA_DIR": os.path.join(self._dir.name, "data"),
            "ADMIN_TOKEN": self.admin_token,
            "POLICIES_DIR": str(policies),
        }
        self._proc = subprocess.Popen(
            [binary, "serve"], env=env, cwd=self._dir.name, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output: List[str] = []
        serving: List[str] = []
        seen = threading.Event()

        def drain() -> None:
            assert self._proc.stdout is not None
            for raw in self._proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.output.append(line)
                if not seen.is_set() and "meshguard serving" in line:
                    serving.append(line)
                    seen.set()
            seen.set()  # the process ended: stop waiting

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        try:
            if not seen.wait(START_DEADLINE) or not serving:
                if any("address already in use" in line for line in self.output):
                    raise _PortTaken()
                raise RuntimeError("meshguard serve did not log 'meshguard serving':\n" + "\n".join(self.output))
            self.url = "http://" + json.loads(serving[0])["http"]
            self._wait_ready()
        except BaseException:
            self._stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("meshguard never became ready:\n" + "\n".join(self.output))
            time.sleep(0.05)

    def admin(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("X-Admin-Token", self.admin_token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            out: Dict[str, Any] = json.loads(r.read())
            return out

    def close(self) -> None:
        self._stop()
        self._dir.cleanup()

    def _stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._drain.join(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class _PortTaken(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


Reply = Tuple[int, Dict[str, str], bytes]


class Receiver:
    """A loopback HTTP server answering every request with ``reply(n)`` (n counts requests from 0).

    It keeps each request's headers, so tests can see what an SDK sent.
    """

    def __init__(self, reply: Callable[[int], Reply]) -> None:
        self.requests: List[Tuple[str, str, Dict[str, str]]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with lock:
                    i = len(outer.requests)
                    outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = reply(i)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a bounded reader does

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(10)


def json_reply(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Reply:
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return status, h, json.dumps(body).encode()


class ClosedPort:
    """A loopback port bound but not listening: connecting is refused, and no one else can take it meanwhile."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()
