"""W3C trace context: the current OpenTelemetry span's when the package is there, a fresh one otherwise."""

from __future__ import annotations

import functools
import importlib
import re
import secrets
from typing import Optional, Protocol, cast

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z", re.DOTALL)


def parse_traceparent(value: object) -> tuple[str, str]:
    """Returns (trace id, flags) of an incoming traceparent; ValueError for an invalid one.

    W3C's rule, the same in every SDK: lower-case hex only; version 00 is
    exactly 55 characters; a higher version is read by its first 55 (what
    follows starts with '-'); version ff and all-zero ids are invalid.
    """
    m = _TRACEPARENT.match(value.strip()) if isinstance(value, str) else None
    if m is None or m.group(1) == "ff" or (m.group(1) == "00" and m.group(5) is not None):
        raise ValueError("traceparent: expected <version>-<32 hex>-<16 hex>-<2 hex>, lower-case, version 00 exactly 55 characters, not version ff")
    _, trace_id, span_id, flags, _ = m.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        raise ValueError("traceparent: an all-zero trace or span id is invalid")
    return trace_id, flags


def _span_id() -> str:
    while True:
        s = secrets.token_hex(8)
        if s != "0" * 16:
            return s


def _trace_id() -> str:
    while True:
        t = secrets.token_hex(16)
        if t != "0" * 32:
            return t


class _SpanContext(Protocol):
    # What the SDK reads of opentelemetry-api's SpanContext.
    @property
    def is_valid(self) -> bool: ...
    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...
    @property
    def trace_flags(self) -> int: ...


class _Span(Protocol):
    def get_span_context(self) -> _SpanContext: ...


class _TraceAPI(Protocol):
    # The opentelemetry.trace module, as far as the SDK uses it.
    def get_current_span(self) -> _Span: ...


@functools.lru_cache(maxsize=1)
def _otel_trace() -> Optional[_TraceAPI]:
    # Looked for once, not at module load: the SDK must work (and stay
    # importable) where opentelemetry is absent, and a failed import is not
    # repeated on every request.
    try:
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None
    # Imported by name, so the SDK type-checks where opentelemetry is absent;
    # _TraceAPI is the part of its API the SDK uses.
    return cast(_TraceAPI, trace)


def _from_opentelemetry() -> Optional[str]:
    trace = _otel_trace()
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return "00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, int(ctx.trace_flags))


def traceparent(parent: Optional[str] = None) -> str:
    """The traceparent for an outgoing request.

    With ``parent`` (a trace the agent continues), a new span in that trace;
    otherwise the current OpenTelemetry span's, or a fresh sampled trace.
    """
    if parent is not None:
        trace_id, flags = parse_traceparent(parent)
        return "00-%s-%s-%s" % (trace_id, _span_id(), flags)
    current = _from_opentelemetry()
    if current is not None:
        return current
    return "00-%s-%s-01" % (_trace_id(), _span_id())
