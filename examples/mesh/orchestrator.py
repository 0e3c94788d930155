"""The Python agent of the example mesh (examples/mesh): the orchestrator.

It starts a trace and posts a research task to the researcher through
MeshGuard's gateway (``/proxy/researcher/...``), with its own token: MeshGuard
decides the hop, mints the researcher's delegation and forwards the task
with it and the trace. It prints what every agent of the chain did, then one
line ``RESULT {json}`` for whoever runs it.

Standard library and the SDK in sdk/python (imported from this repository).
Configured by MESHGUARD_URL, MESHGUARD_TOKEN, RESEARCHER_SERVICE (default
researcher), TOPIC, REPORT_TO.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk", "python"))

from meshguard import MeshGuard, MeshGuardError, denial_from, traceparent  # noqa: E402

MAX_ANSWER = 1 << 20  # the most of a peer's answer read


def hand_on(mg: MeshGuard, researcher: str, task: Dict[str, str]) -> List[Dict[str, Any]]:
    """Posts the task to the researcher through the gateway; returns the chain's steps."""
    # The SDK's handler adds the token and the trace to requests for
    # MeshGuard's host (its gateway), and to no other host.
    opener = urllib.request.build_opener(mg.handler())
    req = urllib.request.Request(
        mg.url + "/proxy/" + researcher + "/tasks",
        data=json.dumps(task).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with opener.open(req, timeout=30) as res:
            raw = res.read(MAX_ANSWER)
    except urllib.error.HTTPError as e:
        with e:
            # MeshGuard's own refusal of the hop (revoked, denied): nothing reached the researcher.
            refusal = denial_from(e)
            if refusal is not None:
                raise refusal from None
            raw = e.read(MAX_ANSWER)
    steps: List[Dict[str, Any]] = [{"agent": "orchestrator", "action": "hand-on:" + researcher, "outcome": "allowed"}]
    try:
        steps.extend(json.loads(raw)["steps"])
    except (ValueError, KeyError, TypeError):
        steps.append({"agent": researcher, "action": "answer", "outcome": "unreadable"})
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
        result["steps"] = hand_on(mg, os.environ.get("RESEARCHER_SERVICE", "researcher"), task)
    except MeshGuardError as e:
        # Could not hand on: refused, revoked. Never an allow.
        print("refused: %s" % e)
        result["error"] = {"kind": e.kind, "status": e.status, "reason": e.reason, "traceId": e.trace_id}
    for s in result.get("steps", []):
        print("%-12s %-26s %s %s" % (s.get("agent"), s.get("action"), s.get("outcome"), s.get("reason") or ""))
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
