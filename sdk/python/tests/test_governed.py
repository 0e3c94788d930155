"""The governed decorator against a real `meshguard serve` (the conformance policies)."""

from __future__ import annotations

import asyncio
import unittest
from typing import Any, Dict, List

from support import CONFORMANCE, Server

import meshguard
from meshguard import MeshGuard


class GovernedTest(unittest.TestCase):
    server: Server
    emailer: MeshGuard

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Server(CONFORMANCE / "policies")
        cls.addClassCleanup(cls.server.close)
        created = cls.server.admin("POST", "/admin/agents", {"name": "emailer", "trustTier": "verified", "tags": ["emailer"]})
        cls.emailer = MeshGuard(cls.server.url, created["token"])

    def test_governed(self) -> None:
        sent: List[str] = []

        def recipient(to: str, body: str) -> Dict[str, Any]:
            return {"recipient": to}

        @self.emailer.governed("write:email", context=recipient)
        def send(to: str, body: str) -> str:
            sent.append(to)
            return "sent to " + to

        tests: List[Dict[str, Any]] = [
            {"name": "an allowed call runs", "to": "ann@example.com", "denied": None},
            {"name": "a denied call raises and does not run", "to": "eve@elsewhere.test", "denied": "rule_deny"},
        ]
        for tt in tests:
            with self.subTest(tt["name"]):
                before = len(sent)
                if tt["denied"] is None:
                    self.assertEqual(send(tt["to"], "hi"), "sent to " + tt["to"])
                    self.assertEqual(sent[before:], [tt["to"]])
                    continue
                with self.assertRaises(meshguard.Denied) as cm:
                    send(tt["to"], "hi")
                self.assertEqual(cm.exception.reason, tt["denied"])
                self.assertTrue(cm.exception.trace_id)
                self.assertEqual(sent[before:], [], "the body ran after a denial")
        self.assertEqual(send.__name__, "send")

    def test_governed_coroutine(self) -> None:
        ran: List[str] = []

        @self.emailer.governed("write:email", context={"recipient": "eve@elsewhere.test"})
        async def send() -> None:
            ran.append("send")

        with self.assertRaises(meshguard.Denied):
            asyncio.run(send())
        self.assertEqual(ran, [])

        @self.emailer.governed("write:email", context={"recipient": "ann@example.com"})
        async def send_ok() -> str:
            return "ok"

        self.assertEqual(asyncio.run(send_ok()), "ok")


if __name__ == "__main__":
    unittest.main()
