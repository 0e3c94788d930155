"""MeshGuard's answers: what one call got back, and the error an error answer is."""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any, Callable, Dict, Mapping, Optional, Protocol

from ._check import json_object, real
from ._errors import BadRequest, Denied, MeshGuardError, RateLimited, Unauthorized, Unavailable, refine
from ._types import Decision

_BAD_REQUEST_STATUSES = frozenset((400, 413, 415, 431))
_TRACE_ID = re.compile(r"[0-9a-f]{32}\Z")


class Headers(Protocol):
    # An answer's headers: http.client's message (names matched case-insensitively), or none.
    def get(self, name: str, /) -> Optional[str]: ...


class Answer:
    __slots__ = ("status", "headers", "body", "sent_trace")

    def __init__(self, status: int, headers: Headers, body: object) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.sent_trace: Optional[str] = None  # the trace id of the traceparent sent


def valid_trace_id(value: object) -> Optional[str]:
    """``value`` when it is a W3C trace id (32 lower-case hex digits, not all zero), else None."""
    if isinstance(value, str) and _TRACE_ID.match(value) and value != "0" * 32:
        return value
    return None


def retry_after_of(headers: Headers, body: object) -> Optional[float]:
    raw = headers.get("Retry-After")
    if raw:
        raw = raw.strip()
        if raw.isdigit():
            return float(raw)
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    obj = json_object(body)
    if obj is not None:
        for key in ("retryAfter", "retry_after"):
            v = real(obj.get(key))
            if v is not None and v >= 0:
                return v
    return None


def error_from(ans: Answer, decision: Optional[Decision], scrub: Callable[[str], str]) -> MeshGuardError:
    """The error of an error answer, filled from MeshGuard's body and headers.

    What the answer says is scrubbed of the tokens (an answer echoing them
    would put them in the error, and so in a log); a trace id is taken from
    it only when it is one, else the one sent names the call.
    """
    body: Mapping[str, object] = json_object(ans.body) or {}

    def s(key: str) -> Optional[str]:
        v = body.get(key)
        return scrub(v) if isinstance(v, str) and v else None

    reason = s("reason")
    fields: Dict[str, Any] = {
        "status": ans.status,
        "reason": reason,
        "trace_id": valid_trace_id(body.get("traceId"))
        or valid_trace_id(body.get("trace_id"))
        or valid_trace_id(ans.headers.get("X-MeshGuard-Trace-Id"))
        or ans.sent_trace,
        "decision_id": s("decisionId"),
        "retry_after": retry_after_of(ans.headers, body),
        "decision": decision,
        "approval_id": valid_approval_id(scrub(ans.headers.get("X-MeshGuard-Approval") or "")) or valid_approval_id(s("approval_id")),
        "approval_url": s("approval_url"),
        "action": s("action"),
    }
    message = s("message") or s("error") or "HTTP %d" % ans.status
    if ans.status == 401:
        return Unauthorized(message, **fields)
    if ans.status == 403:
        return refine(Denied, reason)(message, **fields)
    if ans.status == 429:
        return refine(RateLimited, reason)(message, **fields)
    if ans.status in _BAD_REQUEST_STATUSES:
        return BadRequest(message, **fields)
    return Unavailable(message, **fields)


_APPROVAL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")


def valid_approval_id(value: object) -> Optional[str]:
    """``value`` when it can be an approval id (what goes into a path), else None."""
    if isinstance(value, str) and _APPROVAL_ID.match(value):
        return value
    return None
