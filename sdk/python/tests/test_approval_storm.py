"""A server that answers "pending" without holding the poll gets no storm."""

from __future__ import annotations

import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import support  # noqa: F401  (puts the package on sys.path)

from meshguard import ApprovalTimeout, MeshGuard

BODY = (b'{"id":"apr_s","status":"pending","action":"a:b","agentId":"ag","createdAt":"2026-01-01T00:00:00Z",'
        b'"expiresAt":"2026-01-01T00:00:00Z","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}')


class StormTest(unittest.TestCase):
    def test_wait_for_approval_paces_a_server_that_does_not_hold(self) -> None:
        polls = [0]
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    polls[0] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        mg = MeshGuard("http://127.0.0.1:%d" % srv.server_address[1], support.TOKEN, timeout=1.0)
        wait = 3
        with self.assertRaises(ApprovalTimeout):
            mg.wait_for_approval("apr_s", timeout=wait)
        # One poll a second at most, plus the first: unpaced, it is hundreds.
        with lock:
            self.assertLessEqual(polls[0], wait + 1, "%d polls in a %ds wait" % (polls[0], wait))


if __name__ == "__main__":
    unittest.main()
