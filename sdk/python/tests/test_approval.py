"""Contract tests: waiting on a human approval and reading a gateway's refusal.

The server here is a loopback HTTP server answering as docs/api.md's approval
contract says (GET /v1/approvals/{id} with ?wait, POST /v1/check with Prefer:
wait, a 403 approval_required naming the approval); test_conformance runs the
same behaviour against the real `meshguard serve`.
"""

from __future__ import annotations

import io
import json
import threading
import time
import unittest
import urllib.error
import urllib.parse
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple, Type

import support  # noqa: F401  (puts the package on sys.path)

from meshguard import (
    ApprovalDenied,
    ApprovalExpired,
    ApprovalLimit,
    ApprovalRequired,
    ApprovalTimeout,
    BadRequest,
    Denied,
    MeshGuard,
    MeshGuardError,
    RateLimited,
    Unauthorized,
    denial_from,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Approvals:
    """Approvals kept as the contract does; a decision wakes every held request."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.status: Dict[str, str] = {}
        self.waits: List[int] = []
        self.prefer: List[Optional[str]] = []

    def decide(self, ident: str, status: str) -> None:
        with self.cond:
            self.status[ident] = status
            self.cond.notify_all()

    def polls(self) -> int:
        with self.cond:
            return len(self.waits)

    def await_(self, ident: str, wait: float) -> Optional[str]:
        end = time.monotonic() + wait
        with self.cond:
            while self.status.get(ident) == "pending" and time.monotonic() < end:
                self.cond.wait(end - time.monotonic())
            return self.status.get(ident)


def serve(store: Approvals) -> Tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ident = str(req["action"]).split(":", 1)[1]
            prefer = self.headers.get("Prefer")
            with store.cond:
                store.prefer.append(prefer)
                store.status.setdefault(ident, "pending")
            status = store.await_(ident, 0)
            extra: Dict[str, str] = {}
            if prefer and prefer.startswith("wait="):
                status = store.await_(ident, int(prefer[5:]))
                extra["Preference-Applied"] = prefer
            if status == "approved":
                store.decide(ident, "used")
                self.answer(200, {"decision": "allow", "allowed": True, "status": 200, "reason": "approval_granted", "traceId": TRACE, "chain": []}, extra)
                return
            reason = {"denied": "approval_denied", "expired": "approval_expired"}.get(status or "", "approval_required")
            extra["X-MeshGuard-Approval"] = ident
            self.answer(403, {"decision": "deny", "allowed": False, "status": 403, "error": "forbidden", "reason": reason, "trace_id": TRACE,
                              "approval_id": ident, "approval_url": "/v1/approvals/" + ident, "chain": []}, extra)

        def do_GET(self) -> None:
            u = urllib.parse.urlsplit(self.path)
            ident = u.path.rsplit("/", 1)[1]
            wait = int(urllib.parse.parse_qs(u.query).get("wait", ["0"])[0])
            if not 1 <= wait <= 60:
                self.answer(400, {"error": "bad_request", "message": "wait: want 1 to 60 seconds"})
                return
            with store.cond:
                store.waits.append(wait)
            status = store.await_(ident, wait)
            if status is None:
                self.answer(404, {"error": "not_found", "reason": "not_found"})
                return
            self.answer(200, {"id": ident, "status": status, "action": "approve:" + ident, "agentId": "agt_1",
                              "createdAt": "2026-12-06T10:00:00Z", "expiresAt": "2026-12-07T10:00:00Z", "traceId": TRACE})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "http://127.0.0.1:%d" % srv.server_address[1]


def until(cond: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("never: " + what)
        time.sleep(0.005)


class ContractTest(unittest.TestCase):
    def setUp(self) -> None:
        self.store = Approvals()
        srv, url = serve(self.store)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        self.mg = MeshGuard(url, support.TOKEN, timeout=1.0)

    def test_approval_required_is_its_own_error(self) -> None:
        d = self.mg.check("approve:apr_1")
        self.assertFalse(d.allowed)
        self.assertEqual(d.approval_id, "apr_1")
        with self.assertRaises(ApprovalRequired) as cm:
            self.mg.require("approve:apr_1")
        e = cm.exception
        self.assertIsInstance(e, Denied)  # code that knows only Denied still fails closed
        self.assertNotIsInstance(e, ApprovalTimeout)
        self.assertEqual((e.approval_id, e.approval_url, e.reason, e.trace_id), ("apr_1", "/v1/approvals/apr_1", "approval_required", TRACE))

    def test_wait_for_approval_ends_with_the_decision(self) -> None:
        cases: List[Tuple[str, Optional[str], Optional[Type[MeshGuardError]]]] = [
            ("approved returns the approval", "approved", None),
            ("denied raises ApprovalDenied", "denied", ApprovalDenied),
            ("expired raises ApprovalExpired", "expired", ApprovalExpired),
            ("used raises ApprovalExpired", "used", ApprovalExpired),
            ("pending at the deadline raises ApprovalTimeout", None, ApprovalTimeout),
        ]
        for i, (name, decision, want) in enumerate(cases):
            with self.subTest(name):
                ident = "apr_w%d" % i
                self.mg.check("approve:" + ident)
                if decision is not None:
                    base = self.store.polls()

                    def decide(ident: str = ident, decision: str = decision, base: int = base) -> None:
                        until(lambda: self.store.polls() > base, "a poll")
                        self.store.decide(ident, decision)

                    threading.Thread(target=decide, daemon=True).start()
                timeout = 30.0 if decision is not None else 1.5
                if want is None:
                    ap = self.mg.wait_for_approval(ident, timeout=timeout)
                    self.assertEqual((ap.id, ap.status), (ident, "approved"))
                    continue
                with self.assertRaises(want) as cm:
                    self.mg.wait_for_approval(ident, timeout=timeout)
                self.assertEqual(cm.exception.approval_id, ident)
                if want is ApprovalTimeout:
                    self.assertIsInstance(cm.exception, ApprovalRequired)

    def test_wait_bounds(self) -> None:
        # None: an ApprovalRequired's approval_id is Optional[str] and is passed as it is (docs/sdk.md).
        bads: Tuple[Optional[str], ...] = (None, "", "apr/../x", "a" * 200, "apr 1")
        for bad in bads:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                self.mg.wait_for_approval(bad)
        self.assertEqual(self.store.polls(), 0, "a refused id reached the server")
        with self.assertRaises(BadRequest):
            self.mg.wait_for_approval("apr_unknown", timeout=5)
        self.mg.check("approve:apr_b")
        with self.assertRaises(ApprovalTimeout):
            self.mg.wait_for_approval("apr_b", timeout=2.5)
        for n in self.store.waits[1:]:
            self.assertTrue(1 <= n <= 2, "a poll asked to wait %ds with at most 2.5s left" % n)

    def test_check_with_wait_and_require_waiting(self) -> None:
        self.mg.check("approve:apr_p")
        # The wait (3 s) outlasts the client's timeout (1 s): held, not cut off.
        threading.Thread(target=lambda: (until(lambda: len(self.store.prefer) == 2, "the held check"), time.sleep(1.5),
                                         self.store.decide("apr_p", "approved")), daemon=True).start()
        d = self.mg.check("approve:apr_p", wait=3)
        self.assertEqual((d.allowed, d.reason), (True, "approval_granted"))
        self.assertEqual(self.store.prefer[1], "wait=3")
        for bad in (0, 61, 1.5):
            with self.subTest(wait=bad), self.assertRaises(ValueError):
                self.mg.check("approve:apr_p", wait=bad)  # type: ignore[arg-type]

        self.mg.check("approve:apr_r")
        base = self.store.polls()
        threading.Thread(target=lambda: (until(lambda: self.store.polls() > base, "a poll"), self.store.decide("apr_r", "approved")), daemon=True).start()
        d = self.mg.require("approve:apr_r", wait_for_approval=30)
        self.assertEqual(d.reason, "approval_granted")


class _Resp:
    """The shape requests and httpx answers have: status_code, headers, content."""

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = body


def _http_error(status: int, headers: Dict[str, str], body: bytes) -> urllib.error.HTTPError:
    msg = Message()
    for k, v in headers.items():
        msg[k] = v
    return urllib.error.HTTPError("http://127.0.0.1/proxy/x", status, "refused", msg, io.BytesIO(body))


class DenialFromTest(unittest.TestCase):
    def test_gateway_answers(self) -> None:
        deny = {"X-MeshGuard-Decision": "deny", "X-MeshGuard-Trace-Id": TRACE}
        cases: List[Tuple[str, int, Dict[str, str], Dict[str, Any], Optional[Type[MeshGuardError]], Dict[str, Any]]] = [
            ("a policy's denial", 403, deny, {"error": "forbidden", "reason": "delegation_ceiling"}, Denied,
             {"reason": "delegation_ceiling", "trace_id": TRACE, "status": 403}),
            ("an approval named by the header", 403, {**deny, "X-MeshGuard-Approval": "apr_9"}, {"reason": "approval_required", "approval_url": "/v1/approvals/apr_9"},
             ApprovalRequired, {"approval_id": "apr_9", "approval_url": "/v1/approvals/apr_9"}),
            ("an approval named by the body", 403, deny, {"reason": "approval_required", "approval_id": "apr_8"}, ApprovalRequired, {"approval_id": "apr_8"}),
            ("a revoked caller", 401, deny, {"reason": "agent_revoked"}, Unauthorized, {"reason": "agent_revoked"}),
            ("a rate limit", 429, {**deny, "Retry-After": "7"}, {"reason": "rate_limited"}, RateLimited, {"retry_after": 7.0}),
            ("too many approvals", 429, {**deny, "Retry-After": "7"}, {"reason": "approval_limit"}, ApprovalLimit, {}),
            ("an upstream's own 403", 403, {}, {"reason": "rule_deny"}, None, {}),
            ("an allow", 200, {"X-MeshGuard-Decision": "allow"}, {}, None, {}),
            ("audit mode lets a deny through", 404, {"X-MeshGuard-Decision": "deny", "X-MeshGuard-Mode": "audit"}, {}, None, {}),
        ]
        for name, status, headers, body, want, fields in cases:
            raw = json.dumps(body).encode()
            shapes: List[Tuple[str, object]] = [
                ("requests/httpx", _Resp(status, {k.lower(): v for k, v in headers.items()}, raw)),
                ("urllib HTTPError", _http_error(status, headers, raw)),
            ]
            for shape, resp in shapes:
                with self.subTest(name, shape=shape):
                    err = denial_from(resp)
                    if want is None:
                        self.assertIsNone(err)
                        continue
                    self.assertIsInstance(err, want)
                    for k, v in fields.items():
                        self.assertEqual(getattr(err, k), v, k)


if __name__ == "__main__":
    unittest.main()
