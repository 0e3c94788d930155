"""MeshGuard's Python SDK: an agent asks before it acts, delegates when it hands work on, and
carries its token, its trace and its delegation to the next agent.

    from meshguard import MeshGuard, Denied

    mg = MeshGuard("http://127.0.0.1:3100", token)
    d = mg.check("read:papers", "/papers/42")       # a Decision; d.allowed
    mg.require("write:email", context={...})          # raises Denied on a denial

Standard library only; Python 3.9 or later.
"""

from __future__ import annotations

from ._approval import denial_from
from ._client import MAX_ANSWER_BYTES, MeshGuard
from ._errors import (
    ApprovalDenied,
    ApprovalExpired,
    ApprovalLimit,
    ApprovalRequired,
    ApprovalTimeout,
    BadRequest,
    Denied,
    HeaderConflict,
    MeshGuardError,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from ._helpers import MeshGuardHandler, add_headers, governed
from ._trace import traceparent
from ._types import Approval, Decision, Delegation

__version__ = "0.1.0"

__all__ = [
    "MAX_ANSWER_BYTES",
    "Approval",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalLimit",
    "ApprovalRequired",
    "ApprovalTimeout",
    "BadRequest",
    "Decision",
    "Delegation",
    "Denied",
    "HeaderConflict",
    "MeshGuard",
    "MeshGuardError",
    "MeshGuardHandler",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "add_headers",
    "denial_from",
    "governed",
    "traceparent",
]
