"""Query parameters of the plugin's routes, and the errors that name them.

A bad or missing parameter is a 400 and an unknown name a 404, each with a
message naming the parameter, so the tab (or a user with curl) can see what to
fix. A parameter that takes one value and is given twice is a 400 too:
answering for either value would hide which one was meant.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

# Steps are int64 in event files: a number past these is no step.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Plain decimal integers only: Python's int() also takes "1_000", " 7 " and
# non-ASCII digits, which no client means as a step.
_INTEGER = re.compile(r"-?[0-9]+")
# The most characters of a name or value an error message repeats.
SHOWN_CHARS = 120


class HttpError(Exception):
    """An error answered to the client: its HTTP status and a message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def bad_request(message: str) -> HttpError:
    return HttpError(400, message)


def not_found(message: str) -> HttpError:
    return HttpError(404, message)


def quoted(value: str) -> str:
    """`value` as an error message shows it: its repr (so a NUL byte or a
    trailing space is visible), cut short if long, so a 10,000-character run
    name does not come back as a 10,000-character message."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def _one(request, name: str) -> Optional[str]:
    """The value of a parameter that takes one; None when absent."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise bad_request(f"parameter {name!r} is given {len(values)} times; give it once")
    return values[0] if values else None


def required(request, name: str) -> str:
    """A parameter that must be given, once, non-empty."""
    value = _one(request, name)
    if value is None or value == "":
        raise bad_request(f"missing parameter {name!r}")
    return value


def listed(request, name: str, *, at_least_one: bool = False) -> List[str]:
    """A repeatable parameter (`?run=a&run=b`), each value once, in order."""
    values = request.args.getlist(name)
    if any(v == "" for v in values):
        raise bad_request(f"parameter {name!r} must not be empty")
    if at_least_one and not values:
        raise bad_request(f"missing parameter {name!r} (give it once per {name})")
    return list(dict.fromkeys(values))


def integer(request, name: str, *, minimum: Optional[int] = None, required: bool = False) -> Optional[int]:
    """A decimal integer parameter within int64; None when absent (unless `required`)."""
    value = _one(request, name)
    if value is None or value == "":
        if required:
            raise bad_request(f"missing parameter {name!r}")
        return None
    # Digits past int64's 19 are out of range anyway; not parsed at all.
    if not _INTEGER.fullmatch(value) or len(value.lstrip("-").lstrip("0")) > 19:
        raise bad_request(f"parameter {name!r} must be an integer from {INT64_MIN} to {INT64_MAX}; got {quoted(value)}")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise bad_request(f"parameter {name!r} must be an integer from {INT64_MIN} to {INT64_MAX}; got {quoted(value)}")
    if minimum is not None and number < minimum:
        raise bad_request(f"parameter {name!r} must be at least {minimum}; got {number}")
    return number


def choice(request, name: str, choices: Sequence[str], default: Optional[str] = None) -> str:
    """One of `choices`; `default` when absent (required if there is none)."""
    value = _one(request, name)
    if value is None or value == "":
        if default is None:
            raise bad_request(f"missing parameter {name!r} (one of {', '.join(choices)})")
        return default
    if value not in choices:
        raise bad_request(f"parameter {name!r} must be one of {', '.join(choices)}; got {quoted(value)}")
    return value


def max_steps(request, *, default: Optional[int], cap: int) -> Optional[int]:
    """`max_steps`: how many columns (or steps) a response may hold at most,
    at least 1; larger values are lowered to `cap` so a response stays small."""
    value = integer(request, "max_steps", minimum=1)
    if value is None:
        return default
    return min(value, cap)


def quoted_all(values: Sequence[str], shown: int = 5) -> str:
    """Several values as an error message shows them: the first few, quoted."""
    text = ", ".join(quoted(v) for v in values[:shown])
    return text if len(values) <= shown else f"{text} and {len(values) - shown} more"
