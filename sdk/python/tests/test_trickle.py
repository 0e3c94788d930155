"""An answer that trickles in: the call's timeout bounds the whole answer, not each read of it."""

from __future__ import annotations

import json
import socket
import threading
import unittest
from typing import Callable, List, Tuple

from support import TOKEN  # importing support also puts sdk/python on sys.path

import meshguard
from meshguard import MeshGuard

ALLOW = json.dumps({"decision": "allow", "allowed": True, "status": 200, "reason": "rule_allow", "traceId": "ab" * 16}).encode()


class Trickler:
    """A loopback server answering one request with an allow whose body comes a byte at a time, each
    byte 0.1 s after the last: the whole answer takes about 10 s, each read well under a second."""

    def __init__(self, head: bytes, piece: Callable[[bytes], bytes], tail: bytes) -> None:
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self.url = "http://127.0.0.1:%d" % self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(head, piece, tail), daemon=True)
        self._thread.start()

    def _serve(self, head: bytes, piece: Callable[[bytes], bytes], tail: bytes) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(head)
                for i in range(len(ALLOW)):
                    if self._stop.wait(0.1):
                        return
                    conn.sendall(piece(ALLOW[i : i + 1]))
                conn.sendall(tail)
            except OSError:
                pass  # the client gave up: what the test wants

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(10)


class TrickleTest(unittest.TestCase):
    def test_a_trickling_answer_is_cut_at_the_timeout(self) -> None:
        tests: List[Tuple[str, bytes, Callable[[bytes], bytes], bytes]] = [
            (
                "Content-Length",
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ALLOW),
                lambda b: b,
                b"",
            ),
            (
                "chunked, a byte a chunk",
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                lambda b: b"1\r\n" + b + b"\r\n",
                b"0\r\n\r\n",
            ),
            ("HTTP/1.0, ended by the close", b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n", lambda b: b, b""),
        ]
        for name, head, piece, tail in tests:
            with self.subTest(name):
                t = Trickler(head, piece, tail)
                self.addCleanup(t.close)
                # Were the timeout per read, the whole allow would arrive (after ~10 s) and be believed.
                with self.assertRaises(meshguard.Unavailable) as cm:
                    MeshGuard(t.url, TOKEN, timeout=1, retries=0).check("read:papers")
                self.assertIn("within", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
