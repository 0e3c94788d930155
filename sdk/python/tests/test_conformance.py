"""The conformance table (sdk/conformance/cases.json) through the SDK's public surface, against a real
`meshguard serve`: one subTest per case, in the table's order."""

from __future__ import annotations

import json
import threading
import unittest
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Type

from support import CONFORMANCE, ClosedPort, Receiver, Server, json_reply

import meshguard
from meshguard import MeshGuard, MeshGuardError

#: expect.approval: the SDK's approval error of each name.
APPROVAL_ERRORS: Dict[str, Type[MeshGuardError]] = {
    "required": meshguard.ApprovalRequired,
    "denied": meshguard.ApprovalDenied,
    "expired": meshguard.ApprovalExpired,
    "timeout": meshguard.ApprovalTimeout,
    "limit": meshguard.ApprovalLimit,
}


class ConformanceTest(unittest.TestCase):
    server: Server
    table: Dict[str, Any]
    tokens: Dict[str, str]
    names: Dict[str, str]  # agent id → name, to compare chains

    @classmethod
    def setUpClass(cls) -> None:
        cls.table = json.loads((CONFORMANCE / "cases.json").read_text())
        cls.server = Server(CONFORMANCE / "policies")
        cls.addClassCleanup(cls.server.close)
        cls.tokens, cls.names = {}, {}
        for a in cls.table["agents"]:
            created = cls.server.admin("POST", "/admin/agents", {"name": a["name"], "trustTier": a["trustTier"], "tags": a["tags"]})
            cls.tokens[a["name"]] = created["token"]
            cls.names[created["id"]] = a["name"]
            if a.get("revoked"):
                cls.server.admin("DELETE", "/admin/agents/" + created["id"])

    def test_cases(self) -> None:
        saved: Dict[str, meshguard.Delegation] = {}
        self.approvals: Dict[str, str] = {}
        cases: List[Dict[str, Any]] = self.table["cases"]
        self.assertGreater(len(cases), 0)
        for case in cases:
            with self.subTest(case["name"]):
                self.run_case(case, saved)

    def _target(self, case: Dict[str, Any], token: str, delegation: str) -> str:
        where: Optional[str] = case.get("server")
        if where is None:
            return self.server.url
        if where == "unreachable":
            closed = ClosedPort()
            self.addCleanup(closed.close)
            return closed.url
        reply: Callable[[int], Any]
        if where.startswith("status:"):
            status = int(where.split(":", 1)[1])
            reply = lambda _: json_reply(status, {"error": "unavailable", "message": "answered %d by the test" % status})
        elif where == "answer":
            ans = case["answer"]
            body = ans["body"].replace("$TOKEN", token).replace("$DELEGATION", delegation).encode("utf-8")
            headers = {"Content-Type": "application/json", **ans.get("headers", {})}
            reply = lambda _: (ans["status"], headers, body)
        elif where == "nested":
            reply = lambda _: (200, {"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000)
        elif where == "garbage":
            reply = lambda _: (200, {"Content-Type": "application/json"}, b'{"hello": "not a decision"}')
        else:
            self.fail("unknown server %r" % where)
        rec = Receiver(reply)
        self.addCleanup(rec.close)
        if where == "answer":
            self._answering = rec
        return rec.url

    def run_case(self, case: Dict[str, Any], saved: Dict[str, meshguard.Delegation]) -> None:
        self._answering: Optional[Receiver] = None
        who: str = case["as"]
        token = who[1:] if who.startswith("!") else self.tokens[who]
        delegation = saved[case["actingFor"]].token if "actingFor" in case else ""
        mg = MeshGuard(self._target(case, token, delegation), token, timeout=10)
        if "actingFor" in case:
            mg = mg.acting_for(saved[case["actingFor"]])
        expect: Dict[str, Any] = case["expect"]
        for _ in range(case.get("times", 1)):
            try:
                got = self.while_deciding(case, lambda: self.step(mg, case))
            except MeshGuardError as e:
                self.check_approval(case, e.approval_id, e)
                self.check_error(e, expect, [token, delegation], case["do"])
                continue
            self.check_approval(case, getattr(got, "approval_id", None), None)
            if expect.get("denial") is False:
                self.assertIsNone(got, "denial_from")
                continue
            self.assertNotIn("error", expect, "the step succeeded with %r" % (got,))
            self.check_result(got, expect)
            if "save" in case:
                saved[case["save"]] = got
        if "attempts" in expect:
            self.assertIsNotNone(self._answering, 'expect.attempts needs "server": "answer"')
            assert self._answering is not None
            self.assertEqual(len(self._answering.requests), expect["attempts"], "requests the answer server saw")

    def while_deciding(self, case: Dict[str, Any], step: Callable[[], Any]) -> Any:
        """Runs step; with the case's ``then``, approves or denies the saved approval through the admin API
        once the step has started (before or during its wait, the step's answer is the same)."""
        then: Optional[Dict[str, Any]] = case.get("then")
        if then is None:
            return step()
        out: Dict[str, Any] = {}

        def run() -> None:
            try:
                out["value"] = step()
            except BaseException as e:  # handed to the test's thread
                out["error"] = e

        t = threading.Thread(target=run)
        t.start()
        try:
            verb = "approve" if then["approve"] else "deny"
            self.server.admin("POST", "/admin/approvals/%s/%s" % (self.approvals[then["approval"]], verb), {"by": then["by"]})
        finally:
            t.join()
        if "error" in out:
            raise out["error"]
        return out["value"]

    def check_approval(self, case: Dict[str, Any], approval_id: Optional[str], err: Optional[MeshGuardError]) -> None:
        expect: Dict[str, Any] = case["expect"]
        if "saveApproval" in case:
            self.assertTrue(approval_id, "saveApproval: the step named no approval (%r)" % (err,))
            assert approval_id is not None
            self.approvals[case["saveApproval"]] = approval_id
        if expect.get("approvalId"):
            self.assertTrue(approval_id, "no approval id surfaced (%r)" % (err,))
        if "approval" in expect:
            self.assertIsInstance(err, APPROVAL_ERRORS[expect["approval"]], repr(err))
        if "approvalStatus" in expect:
            self.assertIsNone(err)

    def step(self, mg: MeshGuard, case: Dict[str, Any]) -> Any:
        do = case["do"]
        if do == "check":
            return mg.check(case["action"], case.get("resource"), case.get("context"), wait=case.get("wait"))
        if do == "require":
            return mg.require(case["action"], case.get("resource"), case.get("context"), wait=case.get("wait"),
                              wait_for_approval=case.get("waitForApproval"))
        if do == "wait":
            ap = mg.wait_for_approval(self.approvals[case["approval"]], timeout=case["timeout"])
            self.assertEqual(ap.status, case["expect"].get("approvalStatus", ap.status))
            return ap
        if do == "denial_from":
            # A plain request (no SDK) to the answer server, as an agent calling through a gateway makes.
            try:
                with urllib.request.urlopen(mg.url + "/proxy/peer/task", timeout=10) as r:
                    err = meshguard.denial_from(r)
            except urllib.error.HTTPError as e:
                with e:
                    err = meshguard.denial_from(e)
            if err is not None:
                raise err
            return None
        if do == "delegate":
            return mg.delegate(case["to"], case["actions"], max_depth=case.get("maxDepth"))
        if do == "headers":
            return mg.headers()
        self.fail("unknown step %r" % do)

    def check_error(self, e: MeshGuardError, expect: Dict[str, Any], secrets: List[str], do: str) -> None:
        self.assertIn("error", expect, "unexpected error %r" % (e,))
        self.assertEqual(e.kind, expect["error"], repr(e))
        if "status" in expect:
            self.assertEqual(e.status, expect["status"], repr(e))
        if "reason" in expect:
            self.assertEqual(e.reason, expect["reason"], repr(e))
        if expect.get("retryAfter"):
            self.assertIsNotNone(e.retry_after, repr(e))
            self.assertGreater(e.retry_after or 0, 0, repr(e))
        if do in ("check", "require", "wait", "denial_from") and e.kind != "unavailable":
            # MeshGuard decided: its errors name the trace they were decided in.
            # (POST /v1/delegations sends no trace id: sdk/conformance/README.md.)
            self.assertTrue(e.trace_id, "no trace id in %r" % (e,))
        for i, text in enumerate((str(e), repr(e), e.message, e.trace_id or "", e.reason or "")):
            for secret in secrets:
                # Not quoted on failure: it is a token.
                self.assertFalse(secret and secret in text, "the error's form %d (str, repr, message, trace id, reason) shows a token" % i)

    def check_result(self, got: Any, expect: Dict[str, Any]) -> None:
        if "headers" in expect:
            lower = [k.lower() for k in got]
            for h in expect["headers"]:
                self.assertEqual(lower.count(h), 1, "header %s in %s" % (h, lower))
                self.assertTrue(got[[k for k in got if k.lower() == h][0]])
        for key, attr in (("allowed", "allowed"), ("reason", "reason"), ("policy", "policy"), ("rule", "rule")):
            if key in expect:
                self.assertEqual(getattr(got, attr), expect[key], repr(got))
        if "chain" in expect:
            self.assertEqual([self.names.get(i, i) for i in got.chain], expect["chain"], repr(got))
        if expect.get("token"):
            self.assertIsInstance(got, meshguard.Delegation)
            self.assertTrue(got.token)


if __name__ == "__main__":
    unittest.main()
