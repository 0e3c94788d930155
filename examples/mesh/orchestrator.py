"""The Python agent of the example mesh (examples/mesh): the orchestrator.

It starts a trace, mints a delegation handing a research task to the
researcher (MeshGuard decides whether it may), and posts the task to the
researcher with that delegation and the trace -- never with its own token,
which is for MeshGuard alone. It prints what every agent of the chain did,
then one line ``RESULT {json}`` for whoever runs it.

Standard library and the SDK in sdk/python (imported from this repository).
Configured by MESHGUARD_URL, MESHGUARD_TOKEN, RESEARCHER_URL, TOPIC, REPORT_TO.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))

from meshguard import MeshGuard, MeshGuardError, traceparent  # noqa: E402

MAX_ANSWER = 1 << 20  # the most of a peer's answer read


def hand_on(mg: MeshGuard, researcher: str, task: Dict[str, str]) -> List[Dict[str, Any]]:
    """Mints the researcher's delegation and posts it the task; returns the chain's steps."""
    # Everything the chain may need; MeshGuard's policies still cap it (the
    # orchestrator's permission ceiling leaves notes out).
    delegation = mg.delegate("researcher", ["read:*", "write:email", "write:notes/*"], max_depth=2, ttl="10m")
    steps: List[Dict[str, Any]] = [{"agent": "orchestrator", "action": "delegate:researcher", "outcome": "minted"}]
    req = urllib.request.Request(
        researcher.rstrip("/") + "/tasks",
        data=json.dumps(task).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-MeshGuard-Delegation": delegation.token,
            "traceparent": mg.headers()["traceparent"],
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            raw = res.read(MAX_ANSWER)
    except urllib.error.HTTPError as e:
        raw = e.read(MAX_ANSWER)
    try:
        body = json.loads(raw)
        steps.extend(body["steps"])
    except (ValueError, KeyError, TypeError):
        steps.append({"agent": "researcher", "action": "answer", "outcome": "unreadable"})
    return steps


def main() -> int:
    mg = MeshGuard(os.environ["MESHGUARD_URL"], os.environ["MESHGUARD_TOKEN"])
    # One trace for the whole task: every call continues it.
    root = traceparent()
    mg = mg.with_trace(root)
    trace_id = root.split("-")[1]
    print("trace %s" % trace_id)
    task = {"topic": os.environ.get("TOPIC", "agent-governance"), "reportTo": os.environ.get("REPORT_TO", "team@example.com")}
    result: Dict[str, Any] = {"traceId": trace_id}
    try:
        result["steps"] = hand_on(mg, os.environ["RESEARCHER_URL"], task)
    except MeshGuardError as e:
        # Could not hand on: refused, revoked, MeshGuard unreachable. Never an allow.
        print("refused: %s" % e)
        result["error"] = {"kind": e.kind, "status": e.status, "reason": e.reason, "traceId": e.trace_id}
    for s in result.get("steps", []):
        print("%-12s %-26s %s %s" % (s.get("agent"), s.get("action"), s.get("outcome"), s.get("reason") or ""))
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
