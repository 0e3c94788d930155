"""Governing code and outgoing requests: the ``governed`` decorator and the urllib helpers."""

from __future__ import annotations

import asyncio
import functools
import inspect
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterable, Tuple, TypeVar, cast

from ._check import string
from ._client import MeshGuard
from ._errors import HeaderConflict
from ._types import ContextArg, ResourceArg

F = TypeVar("F", bound=Callable[..., Any])



def governed(mg: MeshGuard, action: str, resource: ResourceArg = None, context: ContextArg = None) -> Callable[[F], F]:
    """A decorator: ``mg.require(action, …)`` before every call, so a denial raises and the body never runs.

    ``resource`` and ``context`` may be callables taking the decorated
    function's own arguments. Coroutine functions are governed too (the check
    runs in a thread, so the event loop is not blocked).
    """
    string(action, "action")

    def ask(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        res = resource(*args, **kwargs) if callable(resource) else resource
        ctx = context(*args, **kwargs) if callable(context) else context
        mg.require(action, res, ctx)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def agoverned(*args: Any, **kwargs: Any) -> Any:
                await asyncio.to_thread(ask, args, kwargs)
                return await fn(*args, **kwargs)

            # F's signature is fn's (functools.wraps); Python 3.9's typing cannot say so (no ParamSpec).
            return cast(F, agoverned)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ask(args, kwargs)
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _host_port(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return "%s:%d" % ((p.hostname or "").lower(), port)


def add_headers(mg: MeshGuard, request: urllib.request.Request) -> urllib.request.Request:
    """Sets MeshGuard's headers (token, traceparent, delegation) on a urllib request; returns it.

    A traceparent the request already has is kept. An ``Authorization`` or
    ``X-MeshGuard-Delegation`` it already has that is not the agent's raises
    HeaderConflict, the request unchanged.
    """
    ours = mg.headers()
    for name in ("Authorization", "X-MeshGuard-Delegation"):
        have = request.get_header(name.capitalize())
        if have is not None and have != ours.get(name):
            raise HeaderConflict("%s: the request already carries another %s than the agent's" % (_redacted(request.full_url), name))
    for k, v in ours.items():
        if k == "traceparent" and request.has_header("Traceparent"):
            continue
        request.add_header(k, v)
    return request


def _redacted(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    return "%s %s://%s%s" % ("request to", p.scheme, p.hostname or "", (":%d" % p.port) if p.port else "")


class MeshGuardHandler(urllib.request.BaseHandler):
    """A urllib handler adding MeshGuard's headers to requests for the hosts it is given.

    Only those hosts (``host:port``; MeshGuard's own always) get the agent's
    token: a request elsewhere, a redirect included, leaves without the
    agent's token and the delegation token, so a redirect cannot carry them away.
    """

    handler_order = 400  # before the HTTP handlers send the request

    def __init__(self, mg: MeshGuard, hosts: Iterable[str] = ()) -> None:
        if isinstance(hosts, str):
            raise TypeError("hosts: expected a list of host:port strings, got one string")
        allowed = {_host_port(mg.url)}
        for h in hosts:
            allowed.add(_host_port(h if "://" in h else "http://" + h))
        self._mg = mg
        self._hosts = frozenset(allowed)

    def _request(self, req: urllib.request.Request) -> urllib.request.Request:
        if _host_port(req.full_url) in self._hosts:
            return add_headers(self._mg, req)
        # A redirect copies the original request's headers: drop the
        # credentials this handler may have set (a caller's own stay).
        ours = self._mg.headers()
        for name, value in (("Authorization", ours["Authorization"]), ("X-meshguard-delegation", None)):
            for store in (req.headers, req.unredirected_hdrs):
                if name in store and (value is None or store[name] == value):
                    del store[name]
        return req

    http_request = _request
    https_request = _request
