"""Runtime checks: what an untyped caller passes, and what MeshGuard's JSON answer holds.

The signatures promise types, but a caller without a type checker can pass
anything, and an answer is whatever came off the wire; so the checks take
``object`` and return the narrowed value (or None), never trusting the
annotation.
"""

from __future__ import annotations

from typing import Dict, List, Optional, cast


def json_object(value: object) -> Optional[Dict[str, object]]:
    """``value`` when it is a decoded JSON object, else None.

    The one place a JSON object gets its static shape: the decoder
    (``json.loads``) builds objects with string keys only.
    """
    if isinstance(value, dict):
        return cast(Dict[str, object], value)
    return None


def json_list(value: object) -> Optional[List[object]]:
    """``value`` when it is a decoded JSON array, else None."""
    if isinstance(value, list):
        return cast(List[object], value)
    return None


def integer(value: object) -> Optional[int]:
    """``value`` when it is an int (a bool is not one), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def real(value: object) -> Optional[float]:
    """``value`` as a float when it is an int or a float (a bool is neither), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def string(value: object, what: str, *, empty: bool = False) -> str:
    """``value`` when it is a string (non-empty unless ``empty``); TypeError naming ``what`` otherwise."""
    if not isinstance(value, str) or (not empty and not value):
        raise TypeError("%s: expected %s" % (what, "a string" if empty else "a non-empty string"))
    return value
