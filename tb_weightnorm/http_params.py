"""Query parameters of the plugin's routes, and the errors that name them.

A bad or missing parameter is a 400 and an unknown name a 404, each with a
message naming the parameter, so the tab (or a user with curl) can see what to
fix.
"""

from __future__ import annotations

from typing import List, Optional, Sequence


class HttpError(Exception):
    """An error answered to the client: its HTTP status and a message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def bad_request(message: str) -> HttpError:
    return HttpError(400, message)


def not_found(message: str) -> HttpError:
    return HttpError(404, message)


def required(request, name: str) -> str:
    """A parameter that must be given, non-empty."""
    value = request.args.get(name)
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
    """An integer parameter; None when absent (unless `required`)."""
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"missing parameter {name!r}")
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f"parameter {name!r} must be an integer; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise bad_request(f"parameter {name!r} must be at least {minimum}; got {number}")
    return number


def choice(request, name: str, choices: Sequence[str], default: Optional[str] = None) -> str:
    """One of `choices`; `default` when absent (required if there is none)."""
    value = request.args.get(name)
    if value is None or value == "":
        if default is None:
            raise bad_request(f"missing parameter {name!r} (one of {', '.join(choices)})")
        return default
    if value not in choices:
        raise bad_request(f"parameter {name!r} must be one of {', '.join(choices)}; got {value!r}")
    return value


def max_steps(request, *, default: Optional[int], cap: int) -> Optional[int]:
    """`max_steps`: how many columns (or steps) a response may hold at most,
    at least 1; larger values are lowered to `cap` so a response stays small."""
    value = integer(request, "max_steps", minimum=1)
    if value is None:
        return default
    return min(value, cap)
