"""The SDK's behaviour beyond the conformance table: failing closed, bounded retries, headers and
trace context, the urllib helpers, and never showing a token."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
import threading
import unittest
import urllib.request
from typing import Any, Callable, Dict, List, Tuple

from support import CONFORMANCE, TOKEN, ClosedPort, Receiver, Reply, json_reply

import meshguard
from meshguard import MeshGuard

DELEGATION = "eyJkZWxlZ2F0aW9uIjoxfQ.ZGVsZWdhdGlvbg.c2ln"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

ALLOW = {"decision": "allow", "allowed": True, "status": 200, "reason": "rule_allow", "traceId": "ab" * 16}


def wrong(value: object) -> Any:
    """``value`` typed Any: a call as an untyped caller would make it, wrong type and all."""
    return value


def scripted(replies: List[Reply]) -> Callable[[int], Reply]:
    """reply(n) for a Receiver: the n-th reply, the last one repeated."""
    return lambda i: replies[min(i, len(replies) - 1)]


class ReceiverCase(unittest.TestCase):
    def receiver(self, replies: List[Reply]) -> Receiver:
        r = Receiver(scripted(replies))
        self.addCleanup(r.close)
        return r


class FailClosedTest(ReceiverCase):
    """Whatever MeshGuard (or whatever answers in its place) says, only a real allow is an allow."""

    def test_answers_that_are_not_an_allow(self) -> None:
        big = b'{"pad":"' + b"x" * meshguard.MAX_ANSWER_BYTES + b'"}'
        tests: List[Tuple[str, Reply, str]] = [
            ("allowed with a 403", json_reply(403, dict(ALLOW, status=403)), "unavailable"),
            ("allowed with status 403 in a 200", json_reply(200, dict(ALLOW, status=403)), "unavailable"),
            ("allowed as a string", json_reply(200, dict(ALLOW, allowed="true")), "unavailable"),
            ("no reason", json_reply(200, {"decision": "allow", "allowed": True}), "unavailable"),
            ("a JSON list", json_reply(200, [ALLOW]), "unavailable"),
            ("not JSON", (200, {"Content-Type": "application/json"}, b"allowed"), "unavailable"),
            ("a duplicate key", (200, {}, b'{"decision":"allow","allowed":false,"allowed":true,"reason":"r"}'), "unavailable"),
            ("over the size bound", (200, {}, big), "unavailable"),
            ("a 500", json_reply(500, {"error": "internal", "message": "boom"}), "unavailable"),
            ("a 404", json_reply(404, {"error": "not_found", "message": "no such path"}), "unavailable"),
            ("a 401", json_reply(401, {"error": "unauthorized", "reason": "token_expired", "message": "expired"}), "unauthorized"),
            ("a 413", json_reply(413, {"error": "payload_too_large", "message": "too big"}), "bad_request"),
        ]
        for name, reply, kind in tests:
            with self.subTest(name):
                mg = MeshGuard(self.receiver([reply]).url, TOKEN, retries=0)
                with self.assertRaises(meshguard.MeshGuardError) as cm:
                    mg.check("read:papers")
                self.assertEqual(cm.exception.kind, kind)
                with self.assertRaises(meshguard.MeshGuardError):
                    mg.require("read:papers")

    def test_redirects_are_not_followed(self) -> None:
        # Following one would send the agent's token, and take the decision, from wherever it points.
        elsewhere = self.receiver([json_reply(200, ALLOW)])
        for status in (301, 302, 307, 308):
            with self.subTest(status):
                bouncer = self.receiver([(status, {"Location": elsewhere.url + "/v1/check"}, b"")])
                with self.assertRaises(meshguard.Unavailable) as cm:
                    MeshGuard(bouncer.url, TOKEN).check("read:papers")
                self.assertEqual(cm.exception.status, status)
        self.assertEqual(elsewhere.requests, [])

    def test_a_denial_is_a_decision_and_require_raises_it(self) -> None:
        deny = {"decision": "deny", "allowed": False, "status": 403, "reason": "rule_deny", "decisionId": "dec_1",
                "error": "forbidden", "trace_id": "cd" * 16, "message": "denied by rule"}
        mg = MeshGuard(self.receiver([json_reply(403, deny)]).url, TOKEN)
        d = mg.check("read:x")
        self.assertFalse(d.allowed)
        self.assertEqual((d.reason, d.trace_id, d.decision_id), ("rule_deny", "cd" * 16, "dec_1"))
        with self.assertRaises(meshguard.Denied) as cm:
            mg.require("read:x")
        e = cm.exception
        self.assertEqual((e.status, e.reason, e.trace_id, e.decision_id), (403, "rule_deny", "cd" * 16, "dec_1"))
        self.assertIs(e.decision is not None and not e.decision.allowed, True)

    def test_timeout(self) -> None:
        release = threading.Event()

        def stall(_: int) -> Reply:
            release.wait(30)
            return json_reply(200, ALLOW)

        r = Receiver(stall)
        self.addCleanup(r.close)
        self.addCleanup(release.set)  # cleanups run last first: release, then close
        with self.assertRaises(meshguard.Unavailable) as cm:
            MeshGuard(r.url, TOKEN, timeout=0.2, retries=3).check("read:papers")
        self.assertIn("did not answer", str(cm.exception))
        self.assertEqual(len(r.requests), 1, "a timeout is not retried")


class RetryTest(ReceiverCase):
    def test_retries(self) -> None:
        unavailable = json_reply(503, {"error": "unavailable", "message": "store down"})
        tests = [
            ("503 up to the bound", [unavailable], 2, 3, "unavailable"),
            ("no retries", [unavailable], 0, 1, "unavailable"),
            ("503 then an allow", [unavailable, json_reply(200, ALLOW)], 2, 2, None),
            ("429 with Retry-After 0, then an allow", [json_reply(429, {"error": "rate_limited"}, {"Retry-After": "0"}), json_reply(200, ALLOW)], 2, 2, None),
            ("429 with a Retry-After beyond max_retry_wait", [json_reply(429, {"error": "rate_limited", "reason": "rate_limited"}, {"Retry-After": "60"})], 2, 1, "rate_limited"),
            ("429 without Retry-After", [json_reply(429, {"error": "rate_limited"})], 2, 1, "rate_limited"),
            ("503 with a Retry-After beyond max_retry_wait", [json_reply(503, {"error": "unavailable"}, {"Retry-After": "60"})], 2, 1, "unavailable"),
            ("400 is never retried", [json_reply(400, {"error": "bad_request", "message": "action"})], 2, 1, "bad_request"),
            ("500 is never retried", [json_reply(500, {"error": "internal"})], 2, 1, "unavailable"),
        ]
        for name, replies, retries, want_requests, want_error in tests:
            with self.subTest(name):
                r = self.receiver(replies)
                mg = MeshGuard(r.url, TOKEN, retries=retries, max_retry_wait=1)
                if want_error is None:
                    self.assertTrue(mg.check("read:papers").allowed)
                else:
                    with self.assertRaises(meshguard.MeshGuardError) as cm:
                        mg.check("read:papers")
                    self.assertEqual(cm.exception.kind, want_error)
                self.assertEqual(len(r.requests), want_requests)

    def test_rate_limited_carries_retry_after(self) -> None:
        r = self.receiver([json_reply(429, {"error": "rate_limited", "reason": "rate_limited", "retry_after": 30}, {"Retry-After": "30"})])
        with self.assertRaises(meshguard.RateLimited) as cm:
            MeshGuard(r.url, TOKEN).check("read:a")
        self.assertEqual(cm.exception.retry_after, 30.0)


class SecretsTest(ReceiverCase):
    """No token in a repr, a str, an exception or the log."""

    def test_no_token_shown(self) -> None:
        closed = ClosedPort()
        self.addCleanup(closed.close)
        unavailable = self.receiver([json_reply(503, {"error": "unavailable", "message": "down"})])
        minted = {"token": DELEGATION, "expiresAt": "2026-01-01T00:00:00Z", "chain": ["a", "b"], "scope": ["read:*"], "maxChain": 1}
        delegations = self.receiver([json_reply(201, minted)])
        shown: List[str] = []
        with self.assertLogs("meshguard", logging.DEBUG) as logs:
            for url in (closed.url, unavailable.url):
                mg = MeshGuard(url, TOKEN, retries=2, max_retry_wait=0.01).acting_for(DELEGATION)
                shown += [repr(mg), str(mg)]
                with self.assertRaises(meshguard.Unavailable) as cm:
                    mg.check("read:papers")
                shown += [repr(cm.exception), str(cm.exception)]
            d = MeshGuard(delegations.url, TOKEN).delegate("b", ["read:*"])
            self.assertEqual(d.token, DELEGATION)
            shown += [repr(d), str(d)]
        shown += [r.getMessage() for r in logs.records]
        self.assertTrue(any("retrying" in line for line in shown), "the retries were logged")
        for line in shown:
            self.assertNotIn(TOKEN, line)
            self.assertNotIn(DELEGATION, line)

    def test_bad_tokens_are_refused_unquoted(self) -> None:
        for bad in ("", "two words", "line\r\nX-Injected: 1", "é" * 3, "x" * (17 << 10)):
            with self.subTest(repr(bad[:20])):
                with self.assertRaises(ValueError) as cm:
                    MeshGuard("http://127.0.0.1:1", bad)
                self.assertTrue(not bad or bad not in str(cm.exception))
                with self.assertRaises(ValueError):
                    MeshGuard("http://127.0.0.1:1", TOKEN).acting_for(bad)

    def test_bad_arguments(self) -> None:
        tests = [
            ("a URL that is not http", lambda: MeshGuard("ftp://h", TOKEN), ValueError),
            ("a URL with a password", lambda: MeshGuard("http://u:p@h", TOKEN), ValueError),
            ("retries beyond the bound", lambda: MeshGuard("http://h", TOKEN, retries=1000), ValueError),
            ("an empty action", lambda: MeshGuard("http://h", TOKEN).check(""), TypeError),
            # What an untyped caller may pass: Any, so the checker lets the wrong type through to the SDK's own checks.
            ("a context that is no mapping", lambda: MeshGuard("http://h", TOKEN).check("read:a", context=wrong([1])), TypeError),
            ("a resource that is no string", lambda: MeshGuard("http://h", TOKEN).check("read:a", wrong(1)), TypeError),
            ("a URL that is no string", lambda: MeshGuard(wrong(None), TOKEN), TypeError),
            ("a timeout that is a bool", lambda: MeshGuard("http://h", TOKEN, timeout=True), ValueError),
            ("retries that are a bool", lambda: MeshGuard("http://h", TOKEN, retries=True), ValueError),
            ("actions as one string", lambda: MeshGuard("http://h", TOKEN).delegate("b", "read:*"), TypeError),
            ("an action that is no string", lambda: MeshGuard("http://h", TOKEN).delegate("b", wrong(["read:*", 1])), TypeError),
            ("no actions", lambda: MeshGuard("http://h", TOKEN).delegate("b", []), TypeError),
            ("a max_depth that is a bool", lambda: MeshGuard("http://h", TOKEN).delegate("b", ["read:*"], max_depth=True), TypeError),
            ("a ttl that is a float", lambda: MeshGuard("http://h", TOKEN).delegate("b", ["read:*"], ttl=wrong(1.5)), TypeError),
        ]
        for name, call, exc in tests:
            with self.subTest(name):
                with self.assertRaises(exc):
                    call()


class HeadersTest(ReceiverCase):
    def test_headers(self) -> None:
        mg = MeshGuard("http://127.0.0.1:1", TOKEN)
        h = mg.headers()
        self.assertEqual(set(h), {"Authorization", "traceparent"})
        self.assertEqual(h["Authorization"], "Bearer " + TOKEN)
        self.assertRegex(h["traceparent"], TRACEPARENT)
        self.assertNotEqual(h["traceparent"][3:35], mg.headers()["traceparent"][3:35], "a fresh trace each time")
        chained = mg.acting_for(DELEGATION).headers()
        self.assertEqual(chained["X-MeshGuard-Delegation"], DELEGATION)
        self.assertNotIn("X-MeshGuard-Delegation", mg.headers(), "acting_for made a copy")

    def test_with_trace(self) -> None:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        tp = MeshGuard("http://127.0.0.1:1", TOKEN).with_trace(parent).headers()["traceparent"]
        self.assertRegex(tp, TRACEPARENT)
        self.assertEqual(tp[:36], parent[:36])
        self.assertNotEqual(tp, parent, "a new span in the parent's trace")

    def test_incoming_traceparents(self) -> None:
        # sdk/conformance/traceparents.json: W3C's rule, as every SDK reads it.
        table = json.loads((CONFORMANCE / "traceparents.json").read_text())
        self.assertGreater(len(table["cases"]), 0)
        for case in table["cases"]:
            with self.subTest(case["value"]):
                mg = MeshGuard("http://127.0.0.1:1", TOKEN)
                if "traceId" not in case:
                    with self.assertRaises(ValueError):
                        mg.with_trace(case["value"])
                    continue
                tp = mg.with_trace(case["value"]).headers()["traceparent"]
                self.assertRegex(tp, TRACEPARENT)
                self.assertEqual(tp[3:35], case["traceId"])

    def test_a_callers_own_credential_is_refused(self) -> None:
        mg = MeshGuard("http://127.0.0.1:1", TOKEN).acting_for(DELEGATION)
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        tests = [
            ("another Authorization", {"Authorization": "Bearer someone-else"}, True),
            ("another delegation", {"X-MeshGuard-Delegation": "another.delegation.token"}, True),
            ("the agent's own Authorization", {"Authorization": "Bearer " + TOKEN}, False),
            ("a traceparent of the caller's is kept", {"traceparent": parent}, False),
        ]
        for name, headers, conflict in tests:
            with self.subTest(name):
                req = urllib.request.Request("http://127.0.0.1:1/x", headers=dict(headers))
                before = req.header_items()
                if conflict:
                    with self.assertRaises(meshguard.HeaderConflict) as cm:
                        mg.add_headers(req)
                    self.assertEqual(req.header_items(), before, "the request is unchanged")
                    for v in headers.values():
                        self.assertNotIn(v, str(cm.exception))
                    continue
                mg.add_headers(req)
                self.assertEqual(req.get_header("Authorization"), "Bearer " + TOKEN)
                if "traceparent" in headers:
                    self.assertEqual(req.get_header("Traceparent"), parent)
        # Through the handler too: the request never leaves.
        r = self.receiver([(200, {}, b"ok")])
        opener = urllib.request.build_opener(MeshGuard(r.url, TOKEN).handler())
        with self.assertRaises(meshguard.HeaderConflict):
            opener.open(urllib.request.Request(r.url + "/x", headers={"Authorization": "Bearer someone-else"}), timeout=10)
        self.assertEqual(r.requests, [])

    @unittest.skipUnless(importlib.util.find_spec("opentelemetry") is not None, "opentelemetry is not installed")
    def test_opentelemetry_span(self) -> None:
        # By name, as the SDK imports it: the type check runs where opentelemetry is absent.
        trace = importlib.import_module("opentelemetry.trace")

        ctx = trace.SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
                                trace_flags=trace.TraceFlags(1))
        with trace.use_span(trace.NonRecordingSpan(ctx)):
            tp = MeshGuard("http://127.0.0.1:1", TOKEN).headers()["traceparent"]
        self.assertEqual(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

    def test_the_check_request_carries_them(self) -> None:
        r = self.receiver([json_reply(200, ALLOW)])
        MeshGuard(r.url, TOKEN).acting_for(DELEGATION).check("read:papers", "/p/1", {"k": "v"})
        _, path, headers = r.requests[0]
        self.assertEqual(path, "/v1/check")
        self.assertEqual(headers["authorization"], "Bearer " + TOKEN)
        self.assertEqual(headers["x-meshguard-delegation"], DELEGATION)
        self.assertRegex(headers["traceparent"], TRACEPARENT)
        self.assertEqual(headers["content-type"], "application/json")

    def test_urllib_helpers(self) -> None:
        mesh = self.receiver([(200, {}, b"ok")])
        elsewhere = self.receiver([(200, {}, b"ok")])
        # MeshGuard's host redirects to another host: the token must not follow.
        bouncer = self.receiver([(302, {"Location": elsewhere.url + "/landed"}, b"")])
        mg = MeshGuard(mesh.url, TOKEN).acting_for(DELEGATION)

        req = mg.add_headers(urllib.request.Request(elsewhere.url + "/direct"))
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        self.assertEqual(elsewhere.requests[-1][2]["authorization"], "Bearer " + TOKEN, "add_headers adds them wherever asked")

        opener = urllib.request.build_opener(mg.handler([bouncer.url.split("//", 1)[1]]))
        for url in (mesh.url + "/proxy/x", elsewhere.url + "/other", bouncer.url + "/bounce"):
            with opener.open(url, timeout=10) as resp:
                resp.read()
        got: Dict[str, Dict[str, str]] = {p: h for _, p, h in mesh.requests + elsewhere.requests + bouncer.requests}
        self.assertEqual(got["/proxy/x"]["authorization"], "Bearer " + TOKEN)
        self.assertEqual(got["/proxy/x"]["x-meshguard-delegation"], DELEGATION)
        self.assertEqual(got["/bounce"]["authorization"], "Bearer " + TOKEN)
        for path in ("/other", "/landed"):
            self.assertNotIn("authorization", got[path], path)
            self.assertNotIn("x-meshguard-delegation", got[path], path)


class AnswersTest(ReceiverCase):
    def test_delegation_answer_is_read_strictly(self) -> None:
        tests: List[Tuple[str, Reply]] = [
            ("no token", json_reply(201, {"expiresAt": "x", "chain": []})),
            ("chain not strings", json_reply(201, {"token": "t", "chain": [1]})),
            ("not JSON", (201, {}, b"<html>")),
        ]
        for name, reply in tests:
            with self.subTest(name):
                with self.assertRaises(meshguard.Unavailable):
                    MeshGuard(self.receiver([reply]).url, TOKEN).delegate("b", ["read:*"])

    def test_delegation_answer(self) -> None:
        minted = {"token": DELEGATION, "expiresAt": "2026-01-01T00:00:00Z", "chain": ["a", "b"], "scope": ["read:*"], "maxChain": 2}
        r = self.receiver([json_reply(201, minted)])
        d = MeshGuard(r.url, TOKEN).delegate("b", ["read:*"], max_depth=2, ttl=90)
        self.assertEqual((d.token, d.chain, d.scope, d.max_chain), (DELEGATION, ("a", "b"), ("read:*",), 2))
        self.assertEqual(r.requests[0][1], "/v1/delegations")

if __name__ == "__main__":
    unittest.main()
