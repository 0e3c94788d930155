"""The SDK's exceptions: one base class, one subclass per way a call fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:
    from ._types import Decision


class MeshGuardError(Exception):
    """A call to MeshGuard did not give an answer the caller may act on.

    ``kind`` is one of ``denied``, ``unauthorized``, ``rate_limited``,
    ``bad_request`` and ``unavailable``; the other fields are what MeshGuard
    sent (``None`` when it sent nothing, or could not be reached). No token is
    ever part of the message or the repr.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        trace_id: Optional[str] = None,
        decision_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        decision: Optional[Decision] = None,
        approval_id: Optional[str] = None,
        approval_url: Optional[str] = None,
        action: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.trace_id = trace_id
        self.decision_id = decision_id
        self.retry_after = retry_after
        self.decision = decision
        self.approval_id = approval_id
        self.approval_url = approval_url
        #: The action MeshGuard refused, when its answer names it (a gateway's deny body).
        self.action = action

    def __str__(self) -> str:
        parts: List[str] = []
        if self.status is not None:
            parts.append("status %d" % self.status)
        if self.reason:
            parts.append("reason %s" % self.reason)
        if self.approval_id:
            parts.append("approval %s" % self.approval_id)
        if self.trace_id:
            parts.append("trace %s" % self.trace_id)
        if self.retry_after is not None:
            parts.append("retry after %gs" % self.retry_after)
        tail = " (" + ", ".join(parts) + ")" if parts else ""
        return "meshguard %s: %s%s" % (self.kind, self.message, tail)

    def __repr__(self) -> str:
        return "%s(kind=%r, status=%r, reason=%r, trace_id=%r, decision_id=%r, retry_after=%r, approval_id=%r, message=%r)" % (
            type(self).__name__,
            self.kind,
            self.status,
            self.reason,
            self.trace_id,
            self.decision_id,
            self.retry_after,
            self.approval_id,
            self.message,
        )


class Denied(MeshGuardError):
    """MeshGuard refused the action (403): ``decision`` holds the denial when it was a check."""

    kind = "denied"


class Unauthorized(MeshGuardError):
    """The agent's token (or its delegation) was refused (401): missing, invalid, expired or revoked."""

    kind = "unauthorized"


class RateLimited(MeshGuardError):
    """A rate limit refused the action (429); ``retry_after`` says when to ask again."""

    kind = "rate_limited"


class BadRequest(MeshGuardError):
    """MeshGuard could not read the request (400, 413, 415): fix the call, do not retry it."""

    kind = "bad_request"


class Unavailable(MeshGuardError):
    """MeshGuard could not be asked, or its answer could not be read. Never an allow."""

    kind = "unavailable"


class ApprovalRequired(Denied):
    """The action waits on a person's approval (403 ``approval_required``).

    ``approval_id`` names it: ``mg.wait_for_approval(e.approval_id)``, then ask again.
    """


class ApprovalDenied(Denied):
    """A person denied the approval the action needed (``approval_denied``)."""


class ApprovalExpired(Denied):
    """The approval expired undecided, or was already used (``approval_expired``): ask again for a new one."""


class ApprovalTimeout(ApprovalRequired):
    """``wait_for_approval`` gave up while the approval was still pending. Never an allow."""


class ApprovalLimit(RateLimited):
    """The agent has too many approvals pending (429 ``approval_limit``)."""


#: The error class of each approval reason code, by the status's class it refines.
_BY_REASON = {
    "approval_required": ApprovalRequired,
    "approval_denied": ApprovalDenied,
    "approval_expired": ApprovalExpired,
    "approval_limit": ApprovalLimit,
}


def refine(base: "type[MeshGuardError]", reason: Optional[str]) -> "type[MeshGuardError]":
    """The approval error class for ``reason`` when it refines ``base`` (Denied, RateLimited), else ``base``."""
    cls = _BY_REASON.get(reason or "")
    if cls is not None and issubclass(cls, base):
        return cls
    return base


class HeaderConflict(ValueError):
    """A request for the mesh already carries another ``Authorization`` or ``X-MeshGuard-Delegation``.

    The SDK never replaces a credential the caller set (that would hide a
    bug), nor sends the request under an identity the caller did not choose:
    as Go's ``agent.ErrHeaderConflict`` and TypeScript's ``HeaderConflict``.
    The message names the header, never its value.
    """
