"""The answers: a decision of /v1/check and a delegation of /v1/delegations, read strictly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

from ._check import integer, json_list, json_object


#: ``governed``'s resource and context: a value fixed at decoration time, or computed from the call's arguments.
ContextArg = Union[None, Mapping[str, Any], Callable[..., Optional[Mapping[str, Any]]]]
ResourceArg = Union[None, str, Callable[..., Optional[str]]]


class MalformedAnswer(ValueError):
    """An answer that is not the document it should be; the client turns it into Unavailable."""


def _opt_str(body: Mapping[str, object], key: str) -> Optional[str]:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise MalformedAnswer("%s: expected a string" % key)
    return v


def _str_list(body: Mapping[str, object], key: str) -> Tuple[str, ...]:
    v = body.get(key)
    if v is None:
        return ()
    items = json_list(v)
    if items is None:
        raise MalformedAnswer("%s: expected a list of strings" % key)
    out: List[str] = []
    for x in items:
        if not isinstance(x, str):
            raise MalformedAnswer("%s: expected a list of strings" % key)
        out.append(x)
    return tuple(out)


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
    approval_id: Optional[str] = None
    approval_url: Optional[str] = None
    raw: Mapping[str, Any] = field(default_factory=lambda: {}, repr=False, compare=False)

    @classmethod
    def from_body(cls, body: object, http_status: int) -> Decision:
        """Reads a decision; MalformedAnswer when the body is not one, or contradicts its status."""
        obj = json_object(body)
        if obj is None:
            raise MalformedAnswer("expected a JSON object")
        allowed = obj.get("allowed")
        decision = obj.get("decision")
        reason = obj.get("reason")
        if not isinstance(allowed, bool) or not isinstance(decision, str) or not isinstance(reason, str):
            raise MalformedAnswer("not a decision: allowed, decision and reason are required")
        status = integer(obj.get("status", http_status))
        if status is None:
            raise MalformedAnswer("status: expected a number")
        mode = _opt_str(obj, "mode")
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
        trace_id = _opt_str(obj, "traceId") or _opt_str(obj, "trace_id")
        return cls(
            allowed=allowed,
            decision=decision,
            status=status,
            reason=reason,
            message=_opt_str(obj, "message") or "",
            policy=_opt_str(obj, "policy"),
            rule=_opt_str(obj, "rule"),
            decision_id=_opt_str(obj, "decisionId"),
            trace_id=trace_id,
            agent_id=_opt_str(obj, "agentId"),
            agent_name=_opt_str(obj, "agentName"),
            trust_tier=_opt_str(obj, "trustTier"),
            action=_opt_str(obj, "action"),
            resource=_opt_str(obj, "resource"),
            chain=_str_list(obj, "chain"),
            policy_revision=_opt_str(obj, "policyRevision"),
            mode=mode,
            approval_id=_opt_str(obj, "approval_id"),
            approval_url=_opt_str(obj, "approval_url"),
            raw=obj,
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
    def from_body(cls, body: object) -> Delegation:
        obj = json_object(body)
        if obj is None:
            raise MalformedAnswer("expected a JSON object")
        token = obj.get("token")
        if not isinstance(token, str) or not token:
            raise MalformedAnswer("not a delegation: no token")
        expires_at = _opt_str(obj, "expiresAt") or ""
        raw_max_chain = obj.get("maxChain")
        max_chain = integer(raw_max_chain)
        if raw_max_chain is not None and max_chain is None:
            raise MalformedAnswer("maxChain: expected a number")
        return cls(
            token=token,
            expires_at=expires_at,
            chain=_str_list(obj, "chain"),
            scope=_str_list(obj, "scope"),
            max_chain=max_chain,
        )


#: The states an approval can be in (docs/governance.md).
APPROVAL_STATES = ("pending", "approved", "denied", "expired", "used")


@dataclass(frozen=True)
class Approval:
    """A human approval's state, as GET /v1/approvals/{id} answers it."""

    id: str
    status: str
    action: Optional[str] = None
    resource: Optional[str] = None
    agent_id: Optional[str] = None
    created_at: Optional[str] = None
    expires_at: Optional[str] = None
    decided_at: Optional[str] = None
    decided_by: Optional[str] = None
    reason: Optional[str] = None
    trace_id: Optional[str] = None

    @classmethod
    def from_body(cls, body: object) -> Approval:
        obj = json_object(body)
        if obj is None:
            raise MalformedAnswer("expected a JSON object")
        ident = obj.get("id")
        status = obj.get("status")
        if not isinstance(ident, str) or not isinstance(status, str):
            raise MalformedAnswer("not an approval: id and status are required")
        if status not in APPROVAL_STATES:
            raise MalformedAnswer("status %r is none MeshGuard sends" % status[:32])
        return cls(
            id=ident,
            status=status,
            action=_opt_str(obj, "action"),
            resource=_opt_str(obj, "resource"),
            agent_id=_opt_str(obj, "agentId"),
            created_at=_opt_str(obj, "createdAt"),
            expires_at=_opt_str(obj, "expiresAt"),
            decided_at=_opt_str(obj, "decidedAt"),
            decided_by=_opt_str(obj, "decidedBy"),
            reason=_opt_str(obj, "reason"),
            trace_id=_opt_str(obj, "traceId"),
        )
