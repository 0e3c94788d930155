"""MeshGuard: the client an agent holds — check, require, delegate, and the headers for the next hop."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any, Callable, Dict, Iterable, List, Mapping, NoReturn, Optional, Set, Tuple, TypeVar, Union, cast

from ._answer import Answer, Headers, error_from, retry_after_of, valid_approval_id, valid_trace_id
from ._check import integer, json_object, real, string
from ._errors import ApprovalRequired, Denied, MeshGuardError, Unavailable, refine
from ._trace import parse_traceparent, traceparent
from ._types import Approval, ContextArg, Decision, Delegation, MalformedAnswer, ResourceArg

# The log never sees a token: only paths, statuses and attempt numbers.
_log = logging.getLogger("meshguard")

#: The largest answer read from MeshGuard; a decision is a few hundred bytes.
MAX_ANSWER_BYTES = 1 << 20
#: The longest token accepted (MeshGuard's are well under 2 KiB).
MAX_TOKEN_BYTES = 16 << 10
#: At most this many retries, whatever the caller asks for.
MAX_RETRIES = 10

F = TypeVar("F", bound=Callable[..., Any])


def _check_token(value: object, what: str) -> str:
    # Validated here so a bad token never reaches http.client, whose error
    # message would quote the header value.
    if not isinstance(value, str):
        raise TypeError("%s: expected a string" % what)
    if not value or len(value) > MAX_TOKEN_BYTES or any(not ("!" <= c <= "~") for c in value):
        raise ValueError("%s: expected 1 to %d printable ASCII characters without spaces" % (what, MAX_TOKEN_BYTES))
    return value


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    # Keys alike but for case count as one, as Go's decoder reads them: every
    # SDK refuses the same answers (sdk/conformance).
    out: Dict[str, Any] = {}
    seen: Set[str] = set()
    for k, v in pairs:
        folded = k.lower().upper()
        if folded in seen:
            raise MalformedAnswer("duplicate key %r" % k[:64])
        seen.add(folded)
        out[k] = v
    return out


def _not_json(name: str) -> NoReturn:
    # NaN, Infinity and -Infinity: Python's json reads them, JSON (and the other SDKs) does not.
    raise MalformedAnswer("%s is not JSON" % name)


def _backoff(attempt: int) -> float:
    """The wait before retry ``attempt + 1`` when the answer named none (or 0): 0.1 s doubling, at most 1.6 s."""
    return 0.1 * (2 ** min(attempt, 4))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the agent's token to wherever it points.
    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Optional[urllib.request.Request]:
        return None


class MeshGuard:
    """An agent's client of MeshGuard's agents' API (POST /v1/check, POST /v1/delegations).

    ``url`` is MeshGuard's HTTP address, ``token`` the agent's token. Copies
    made by ``acting_for`` and ``with_trace`` share nothing mutable.
    Every failure is a ``MeshGuardError``; "could not ask" is never an allow.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        max_retry_wait: float = 5.0,
    ) -> None:
        url = string(url, "url", empty=True)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url: expected http:// or https:// and a host")
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            raise ValueError("url: expected no user, password, query or fragment")
        timeout_s = real(timeout)
        if timeout_s is None or not 0 < timeout_s <= 600:
            raise ValueError("timeout: expected 0 < seconds <= 600")
        retries_n = integer(retries)
        if retries_n is None or not 0 <= retries_n <= MAX_RETRIES:
            raise ValueError("retries: expected 0 to %d" % MAX_RETRIES)
        max_wait_s = real(max_retry_wait)
        if max_wait_s is None or not 0 <= max_wait_s <= 600:
            raise ValueError("max_retry_wait: expected 0 to 600 seconds")
        self._url = url.rstrip("/")
        self._token = _check_token(token, "token")
        self._timeout = timeout_s
        self._retries = retries_n
        self._max_retry_wait = max_wait_s
        self._delegation: Optional[str] = None
        self._parent: Optional[str] = None
        self._opener = urllib.request.build_opener(_NoRedirect())

    def __repr__(self) -> str:
        return "MeshGuard(url=%r, acting_for_chain=%r)" % (self._url, self._delegation is not None)

    @property
    def url(self) -> str:
        return self._url

    def _copy(self) -> MeshGuard:
        c = MeshGuard.__new__(MeshGuard)
        c.__dict__.update(self.__dict__)
        return c

    def acting_for(self, delegation: Union[Delegation, str]) -> MeshGuard:
        """A copy that acts for a delegation chain: it sends the delegation token with every call."""
        tok = delegation.token if isinstance(delegation, Delegation) else delegation
        c = self._copy()
        c._delegation = _check_token(tok, "delegation token")
        return c

    def with_trace(self, parent: str) -> MeshGuard:
        """A copy whose calls continue the trace of ``parent`` (an incoming request's traceparent)."""
        parse_traceparent(parent)
        c = self._copy()
        c._parent = parent.strip()
        return c

    def headers(self) -> Dict[str, str]:
        """The headers an outgoing request to the mesh carries: the token, the trace, the delegation.

        Pass them to any client that takes a headers dict (``requests``, ``httpx``).
        """
        h = {"Authorization": "Bearer " + self._token, "traceparent": traceparent(self._parent)}
        if self._delegation is not None:
            h["X-MeshGuard-Delegation"] = self._delegation
        return h

    def add_headers(self, request: urllib.request.Request) -> urllib.request.Request:
        """Sets ``headers()`` on a urllib request and returns it."""
        from ._helpers import add_headers

        return add_headers(self, request)

    def handler(self, hosts: Iterable[str] = ()) -> urllib.request.BaseHandler:
        """A urllib handler (``urllib.request.build_opener(mg.handler([...]))``) that adds ``headers()``
        to requests for MeshGuard's host and ``hosts`` (``host:port``), and to no other."""
        from ._helpers import MeshGuardHandler

        return MeshGuardHandler(self, hosts)

    def governed(self, action: str, resource: ResourceArg = None, context: ContextArg = None) -> Callable[[F], F]:
        """A decorator that runs ``require(action, resource, context)`` before the function.

        ``resource`` and ``context`` may be values or callables given the function's arguments.
        """
        from ._helpers import governed

        return governed(self, action, resource, context)

    # -- the agents' API -------------------------------------------------

    def check(
        self,
        action: str,
        resource: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        *,
        wait: Optional[int] = None,
    ) -> Decision:
        """Asks whether the agent may do ``action``. A denial is a Decision (``allowed`` False).

        With ``wait`` (1 to 60 seconds), MeshGuard holds the answer of a request that needs a
        person's approval until it is decided (``Prefer: wait``): the answer is the final decision.
        Raises Unauthorized, RateLimited, BadRequest or Unavailable when there is no decision to act on.
        """
        hold = 0
        if wait is not None:
            n = integer(wait)
            if n is None or not 1 <= n <= 60:
                raise ValueError("wait: expected 1 to 60 seconds")
            hold = n
        payload: Dict[str, Any] = {"action": string(action, "action")}
        if resource is not None:
            payload["resource"] = string(resource, "resource", empty=True)
        if context is not None:
            payload["context"] = _mapping(context, "context")
        ans = self._call("POST", "/v1/check", payload, hold=hold, prefer=hold > 0)
        decision: Optional[Decision] = None
        body = json_object(ans.body)
        if body is not None and "allowed" in body:
            try:
                decision = Decision.from_body(ans.body, ans.status)
            except MalformedAnswer as e:
                raise Unavailable("MeshGuard's answer is not a decision: %s" % e, status=ans.status) from None
        if ans.status == 200:
            if decision is None:
                raise Unavailable("MeshGuard's answer is not a decision", status=200)
            return decision
        if ans.status == 403 and decision is not None and not decision.allowed:
            return decision
        raise self._error(ans, decision)

    def require(
        self,
        action: str,
        resource: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        *,
        wait: Optional[int] = None,
        wait_for_approval: Optional[float] = None,
    ) -> Decision:
        """Like check, but a denial raises Denied (with the decision's reason, trace id and decision id).

        A request that needs a person's approval raises ApprovalRequired naming it (``approval_id``).
        With ``wait_for_approval`` (seconds), require waits for that approval and asks again, once.
        """
        try:
            return self._require(action, resource, context, wait)
        except ApprovalRequired as e:
            if wait_for_approval is None or not e.approval_id:
                raise
            self.wait_for_approval(e.approval_id, timeout=wait_for_approval)
        return self._require(action, resource, context, wait)

    def _require(self, action: str, resource: Optional[str], context: Optional[Mapping[str, Any]], wait: Optional[int]) -> Decision:
        d = self.check(action, resource, context, wait=wait)
        if not d.allowed:
            cls = refine(Denied, d.reason)
            raise cls(
                self._scrub(d.message) or "denied",
                status=d.status,
                reason=self._scrub(d.reason),
                trace_id=valid_trace_id(d.trace_id),
                decision_id=d.decision_id,
                decision=d,
                approval_id=valid_approval_id(self._scrub(d.approval_id or "")),
                approval_url=self._scrub(d.approval_url) if d.approval_url else None,
            )
        return d

    def wait_for_approval(self, approval_id: Optional[str], timeout: float = 300.0) -> Approval:
        """Waits until the approval ``approval_id`` is decided (long-polling GET /v1/approvals/{id}).

        It takes an ``ApprovalRequired``'s ``approval_id`` as it is (``Optional[str]``): an id
        that is None or not one MeshGuard makes raises ValueError before anything is sent.

        Approved, it returns the Approval: ask again, and MeshGuard allows that request once.
        Raises ApprovalDenied, ApprovalExpired (expired or already used), ApprovalTimeout (still
        pending after ``timeout`` seconds), or the errors of any call. Never an allow.
        """
        from ._approval import wait_for_approval

        def poll(path: str, hold: int) -> Answer:
            return self._call("GET", path, None, idempotent=True, hold=hold)

        return wait_for_approval(poll, lambda ans: self._error(ans, None), approval_id, timeout)

    def delegate(
        self,
        to: str,
        actions: Iterable[str],
        max_depth: Optional[int] = None,
        ttl: Union[None, int, str, timedelta] = None,
    ) -> Delegation:
        """Mints a delegation handing ``actions`` to agent ``to`` (a name or id); raises Denied when refused."""
        payload: Dict[str, Any] = {"delegate": string(to, "to"), "actions": _actions(actions)}
        if max_depth is not None:
            depth = integer(max_depth)
            if depth is None:
                raise TypeError("max_depth: expected an int")
            payload["maxDepth"] = depth
        if ttl is not None:
            payload["ttl"] = _ttl(ttl)
        # Not retried after an answer: a proxy's 503 may follow a mint, and a second attempt would mint twice.
        ans = self._call("POST", "/v1/delegations", payload, retry_answers=False)
        if ans.status in (200, 201):
            try:
                return Delegation.from_body(ans.body)
            except MalformedAnswer as e:
                raise Unavailable("MeshGuard's answer is not a delegation: %s" % e, status=ans.status) from None
        raise self._error(ans, None)

    # -- transport ---------------------------------------------------------

    def _error(self, ans: Answer, decision: Optional[Decision]) -> MeshGuardError:
        return error_from(ans, decision, self._scrub)

    def _scrub(self, text: str) -> str:
        text = text.replace(self._token, "[token]")
        if self._delegation is not None:
            text = text.replace(self._delegation, "[delegation]")
        return text

    def _call(
        self,
        method: str,
        path: str,
        payload: Optional[Mapping[str, Any]],
        retry_answers: bool = True,
        *,
        idempotent: bool = False,
        hold: float = 0,
        prefer: bool = False,
    ) -> Answer:
        # What is retried, the same in every SDK (docs/sdk.md): a refused
        # connection (nothing reached a server); with retry_answers, a 503
        # and a 429 that names its wait; for an idempotent GET, also any
        # failure to be answered and any 5xx. ``hold`` is how long MeshGuard
        # may hold the answer (a long poll): it lengthens this call's timeout.
        data = None if payload is None else json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")
        # Every attempt carries the same traceparent: one call, one trace.
        sent = self.headers()
        if prefer:
            sent["Prefer"] = "wait=%d" % hold
        sent_trace = sent["traceparent"][3:35]
        attempt = 0
        while True:
            req = urllib.request.Request(self._url + path, data=data, method=method)
            if data is not None:
                req.add_header("Content-Type", "application/json")
            req.add_header("Accept", "application/json")
            for k, v in sent.items():
                req.add_header(k, v)
            wait: Optional[float]
            try:
                ans = self._send(req, self._timeout + hold)
            except (_Refused, Unavailable) as e:
                if isinstance(e, Unavailable) and not idempotent:
                    raise
                if attempt >= self._retries:
                    raise Unavailable("could not reach MeshGuard at %s: %s" % (self._url, e), trace_id=sent_trace) from None
                wait = _backoff(attempt)
                _log.debug("meshguard %s: no answer, retrying in %.2fs (attempt %d)", path, wait, attempt + 1)
            else:
                ans.sent_trace = sent_trace
                retry_status = ans.status in (429, 503) or (idempotent and ans.status >= 500)
                if not (retry_answers or idempotent) or not retry_status or attempt >= self._retries:
                    return ans
                named = retry_after_of(ans.headers, ans.body)
                if named is None and ans.status == 429:
                    return ans  # MeshGuard always names its wait: a proxy answered, the caller decides
                # A named wait of 0 is the backoff, never a hot loop.
                wait = max(named or 0.0, _backoff(attempt))
                if wait > self._max_retry_wait:
                    return ans
                _log.debug("meshguard %s: status %d, retrying in %.2fs (attempt %d)", path, ans.status, wait, attempt + 1)
            attempt += 1
            time.sleep(wait)


    def _send(self, req: urllib.request.Request, timeout: float) -> Answer:
        # The socket's timeout bounds each read; the deadline bounds the
        # answer, which could otherwise trickle in a byte per read forever.
        deadline = time.monotonic() + timeout
        try:
            resp = self._opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            try:
                # urllib's HTTPError carries the HTTPResponse (a BufferedIOBase) as fp.
                if not isinstance(e.fp, io.BufferedIOBase):
                    raise Unavailable("MeshGuard's answer could not be read", status=e.code) from None
                return self._read(e.code, e.headers, e.fp, deadline, timeout)
            finally:
                e.close()
        except urllib.error.URLError as e:
            if isinstance(e.reason, ConnectionRefusedError):
                raise _Refused("connection refused") from None
            raise Unavailable("could not reach MeshGuard at %s: %s" % (self._url, e.reason)) from None
        except (socket.timeout, TimeoutError):
            raise Unavailable("MeshGuard at %s did not answer within %gs" % (self._url, timeout)) from None
        except (http.client.HTTPException, OSError) as e:
            raise Unavailable("could not talk to MeshGuard at %s: %s" % (self._url, type(e).__name__)) from None
        with resp:
            return self._read(resp.status, resp.headers, resp, deadline, timeout)

    def _read(self, status: int, headers: Optional[Headers], stream: io.BufferedIOBase, deadline: float, timeout: float) -> Answer:
        late = Unavailable("MeshGuard's answer did not arrive within %gs" % timeout, status=status)
        chunks: List[bytes] = []
        size = 0
        try:
            while size <= MAX_ANSWER_BYTES:
                if time.monotonic() > deadline:
                    raise late
                # read1: at most one read of the socket, so the deadline is looked at between reads.
                chunk = stream.read1(MAX_ANSWER_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            raw = b"".join(chunks)
        except (socket.timeout, TimeoutError):
            raise late from None
        except (http.client.HTTPException, OSError) as e:
            raise Unavailable("reading MeshGuard's answer: %s" % type(e).__name__, status=status) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise Unavailable("MeshGuard's answer is over %d bytes" % MAX_ANSWER_BYTES, status=status)
        view: Headers = headers if headers is not None else {}
        try:
            body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_not_json) if raw else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            # RecursionError: json nests by recursion, so [[[…]]] deep enough
            # is not JSON to us either (and must not escape as another error).
            if status < 400:
                raise Unavailable("MeshGuard's answer is not JSON", status=status) from None
            body = None
        return Answer(status, view, body)


def _mapping(value: object, what: str) -> Dict[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError("%s: expected a mapping" % what)
    # A Mapping's keys are whatever the caller put there; json.dumps says so if they are not strings.
    return dict(cast("Mapping[str, object]", value))


def _actions(value: object) -> List[str]:
    if isinstance(value, str):
        raise TypeError("actions: expected a list of strings, got one string")
    if not isinstance(value, Iterable):
        raise TypeError("actions: expected a non-empty list of strings")
    acts: List[str] = []
    for a in cast("Iterable[object]", value):
        if not isinstance(a, str):
            raise TypeError("actions: expected a non-empty list of strings")
        acts.append(a)
    if not acts:
        raise TypeError("actions: expected a non-empty list of strings")
    return acts


def _ttl(value: object) -> Union[int, str]:
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, str):
        return value
    seconds = integer(value)
    if seconds is None:
        raise TypeError("ttl: expected seconds, a duration string or a timedelta")
    return seconds


class _Refused(Exception):
    """Nothing listens: the request never reached anyone, so it is safe to retry."""
