"""The answers: a decision of /v1/check and a delegation of /v1/delegations, read strictly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple


class MalformedAnswer(ValueError):
    """An answer that is not the document it should be; the client turns it into Unavailable."""


def _opt_str(body: Mapping[str, Any], key: str) -> Optional[str]:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise MalformedAnswer("%s: expected a string" % key)
    return v


def _str_list(body: Mapping[str, Any], key: str) -> Tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise MalformedAnswer("%s: expected a list of strings" % key)
    return tuple(v)


@dataclass(frozen=True)
class Decision:
    """MeshGuard's decision on one action. ``allowed`` is the one field to branch on."""

    allowed: bool
    decision: str
    status: int
    reason: str
    message: str = ""
    policy: Optional[str] = None
    rule: Optional[str] = None
    decision_id: Optional[str] = None
    trace_id: Optional[str] = None
    agent_id: Optional[str] = None
    agent_name: Optional[str] = None
    trust_tier: Optional[str] = None
    action: Optional[str] = None
    resource: Optional[str] = None
    chain: Tuple[str, ...] = ()
    policy_revision: Optional[str] = None
    mode: Optional[str] = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_body(cls, body: Any, http_status: int) -> Decision:
        """Reads a decision; MalformedAnswer when the body is not one, or contradicts its status."""
        if not isinstance(body, dict):
            raise MalformedAnswer("expected a JSON object")
        allowed = body.get("allowed")
        decision = body.get("decision")
        reason = body.get("reason")
        if not isinstance(allowed, bool) or not isinstance(decision, str) or not isinstance(reason, str):
            raise MalformedAnswer("not a decision: allowed, decision and reason are required")
        status = body.get("status", http_status)
        if not isinstance(status, int) or isinstance(status, bool):
            raise MalformedAnswer("status: expected a number")
        mode = _opt_str(body, "mode")
        # An allow is believed only from a 200 that says so: anything else
        # reading "allowed" would let a confused proxy or server open the door.
        # Audit mode's allow is a deny that is let through (its status the denial's).
        if decision not in ("allow", "deny"):
            raise MalformedAnswer("decision: expected allow or deny")
        if allowed and http_status != 200:
            raise MalformedAnswer("an allow with status %d" % http_status)
        if allowed and decision == "allow" and status != 200:
            raise MalformedAnswer("an allow whose body says status %d" % status)
        if allowed and decision == "deny" and mode != "audit":
            raise MalformedAnswer("a deny that says allowed outside audit mode")
        if not allowed and decision != "deny":
            raise MalformedAnswer("an allow that says not allowed")
        trace_id = _opt_str(body, "traceId") or _opt_str(body, "trace_id")
        return cls(
            allowed=allowed,
            decision=decision,
            status=status,
            reason=reason,
            message=_opt_str(body, "message") or "",
            policy=_opt_str(body, "policy"),
            rule=_opt_str(body, "rule"),
            decision_id=_opt_str(body, "decisionId"),
            trace_id=trace_id,
            agent_id=_opt_str(body, "agentId"),
            agent_name=_opt_str(body, "agentName"),
            trust_tier=_opt_str(body, "trustTier"),
            action=_opt_str(body, "action"),
            resource=_opt_str(body, "resource"),
            chain=_str_list(body, "chain"),
            policy_revision=_opt_str(body, "policyRevision"),
            mode=mode,
            raw=body,
        )


@dataclass(frozen=True)
class Delegation:
    """A minted delegation: hand ``token`` to the delegate (its SDK sends it with ``acting_for``).

    The token is left out of the repr, so logging a Delegation does not leak it.
    """

    token: str = field(repr=False)
    expires_at: str
    chain: Tuple[str, ...]
    scope: Tuple[str, ...]
    max_chain: Optional[int] = None

    @classmethod
    def from_body(cls, body: Any) -> Delegation:
        if not isinstance(body, dict):
            raise MalformedAnswer("expected a JSON object")
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise MalformedAnswer("not a delegation: no token")
        expires_at = _opt_str(body, "expiresAt") or ""
        max_chain = body.get("maxChain")
        if max_chain is not None and (not isinstance(max_chain, int) or isinstance(max_chain, bool)):
            raise MalformedAnswer("maxChain: expected a number")
        return cls(
            token=token,
            expires_at=expires_at,
            chain=_str_list(body, "chain"),
            scope=_str_list(body, "scope"),
            max_chain=max_chain,
        )
