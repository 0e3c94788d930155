"""Waiting on a human approval, and reading a gateway's refusal (docs/sdk.md)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping, Optional, cast

from ._answer import Answer, Headers, error_from, valid_approval_id, valid_trace_id
from ._check import integer, real
from ._errors import ApprovalDenied, ApprovalExpired, ApprovalTimeout, BadRequest, Denied, MeshGuardError, Unavailable
from ._types import Approval, MalformedAnswer

#: The longest a single held request may wait (the server's bound on ``Prefer: wait`` and ``?wait``).
MAX_WAIT = 60
#: The longest ``wait_for_approval`` accepts (a day).
MAX_APPROVAL_WAIT = 24 * 60 * 60.0
#: The largest deny body ``denial_from`` reads.
MAX_DENY_BODY = 1 << 20


def wait_for_approval(
    poll: Callable[[str, int], Answer],
    error: Callable[[Answer], MeshGuardError],
    approval_id: Optional[str],
    timeout: float,
) -> Approval:
    """The loop behind ``MeshGuard.wait_for_approval``: ``poll(path_and_query, hold)`` sends one GET."""
    ident = valid_approval_id(approval_id)
    if ident is None:
        raise ValueError("approval_id: expected 1 to 128 letters, digits, _ or -")
    limit = real(timeout)
    if limit is None or not 0 < limit <= MAX_APPROVAL_WAIT:
        raise ValueError("timeout: expected 0 < seconds <= %d" % MAX_APPROVAL_WAIT)
    deadline = time.monotonic() + limit
    trace: Optional[str] = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise ApprovalTimeout(
                "the approval was still pending when the wait ended",
                reason="approval_required",
                trace_id=trace,
                approval_id=ident,
            )
        n = min(int(remaining), MAX_WAIT)
        started = time.monotonic()
        try:
            ans = poll("/v1/approvals/%s?wait=%d" % (ident, n), n)
        except Unavailable as e:
            e.approval_id = e.approval_id or ident
            raise
        trace = trace or ans.sent_trace
        if ans.status != 200:
            err = error(ans)
            if ans.status == 404:  # no approval of this agent has that id
                err = BadRequest(err.message, status=404, reason=err.reason, trace_id=err.trace_id)
            err.approval_id = err.approval_id or ident
            raise err
        try:
            ap = Approval.from_body(ans.body)
        except MalformedAnswer as e:
            raise Unavailable("MeshGuard's answer is not the approval: %s" % e, status=200, trace_id=trace, approval_id=ident) from None
        if ap.id != ident:
            raise Unavailable("MeshGuard's answer is about another approval", status=200, trace_id=trace, approval_id=ident)
        trace = valid_trace_id(ap.trace_id) or trace
        if ap.status == "approved":
            return ap
        if ap.status == "denied":
            raise ApprovalDenied("a person denied the approval", reason="approval_denied", trace_id=trace, approval_id=ident)
        if ap.status in ("expired", "used"):
            what = "the approval was already used" if ap.status == "used" else "the approval expired undecided"
            raise ApprovalExpired(what, reason="approval_expired", trace_id=trace, approval_id=ident)
        # Pending. A server that answers so without holding the poll (a proxy, one shutting down)
        # is polled at most once a second, never in a storm.
        pause = min(1.0 - (time.monotonic() - started), deadline - time.monotonic())
        if pause > 0:
            time.sleep(pause)


class _FoldedHeaders:
    # A plain dict's names, matched regardless of case as HTTP's are.
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._h = {k.lower(): v for k, v in headers.items()}

    def get(self, name: str, /) -> Optional[str]:
        return self._h.get(name.lower())


def _headers_of(response: object) -> Headers:
    h = getattr(response, "headers", None)
    if isinstance(h, dict):
        return _FoldedHeaders(cast("Mapping[str, str]", h))
    if h is None or not callable(getattr(h, "get", None)):
        return _FoldedHeaders({})
    # http.client's HTTPMessage, requests' and httpx's headers: get() matches names regardless of case.
    return cast(Headers, h)


def _status_of(response: object) -> Optional[int]:
    for attr in ("status_code", "status", "code"):  # requests/httpx, http.client, urllib's HTTPError
        v = integer(getattr(response, attr, None))
        if v is not None:
            return v
    return None


def _body_of(response: object, body: Optional[bytes]) -> object:
    raw: object = body
    if raw is None:
        raw = getattr(response, "content", None)  # requests and httpx: already read
    if not isinstance(raw, (bytes, bytearray)):
        read = getattr(response, "read", None)  # http.client and urllib: the stream, read once
        raw = cast("Callable[[int], Any]", read)(MAX_DENY_BODY) if callable(read) else b""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_DENY_BODY:
        return None
    try:
        return json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def denial_from(response: object, body: Optional[bytes] = None) -> Optional[MeshGuardError]:
    """MeshGuard's refusal in the answer of a request made through its gateway (or Envoy's ext_authz).

    ``response`` is urllib's ``HTTPError``, an ``http.client`` response, or any object with
    ``status``/``status_code``/``code``, ``headers`` and ``read()`` or ``content`` (``requests``,
    ``httpx``). When MeshGuard refused the request (``X-MeshGuard-Decision: deny`` on an error
    status, outside audit mode) it returns the SDK's error — ApprovalRequired naming the approval,
    Denied with the reason and trace id, Unauthorized, RateLimited with retry-after — to raise or
    inspect; otherwise None: an upstream's own 403 is not MeshGuard's. It reads a stream's body only
    for MeshGuard's refusal; pass ``body`` when it was read already.
    """
    headers = _headers_of(response)
    status = _status_of(response)
    decision = (headers.get("X-MeshGuard-Decision") or "").strip().lower()
    mode = (headers.get("X-MeshGuard-Mode") or "").strip().lower()
    if decision != "deny" or mode == "audit" or status is None or status < 400:
        return None
    ans = Answer(status, headers, _body_of(response, body))
    ans.sent_trace = valid_trace_id(headers.get("X-MeshGuard-Trace-Id"))
    err = error_from(ans, None, lambda s: s)
    if isinstance(err, Unavailable) and status < 500:
        # MeshGuard said deny with a status the SDK has no kind for.
        fields: Mapping[str, Any] = {k: getattr(err, k) for k in ("status", "reason", "trace_id", "decision_id", "approval_id", "approval_url", "action")}
        return Denied(err.message, **fields)
    return err


__all__ = ["denial_from", "wait_for_approval"]
