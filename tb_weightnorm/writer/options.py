"""What to log: the choices shared by `log()` and `WeightHealthCallback`."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

# Keeping W_0 for distance-from-initialisation costs one copy of the logged
# weights; below this many elements (64 MB of float32) that is cheap enough to
# do without being asked.
CHEAP_INITIAL_WEIGHTS = 16 * 1024 * 1024


def _patterns(name: str, value) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a glob pattern or a list of them; got {value!r}.") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold glob patterns (strings); got {item!r}.")
    return items


def _positive_int(name: str, value, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        floor = "0 (never) or a positive integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name} must be {floor}; got {value!r}.")
    return value


@dataclasses.dataclass(frozen=True)
class LogOptions:
    """Which variables and stats to log, and how.

    Attributes:
        include: glob patterns on layer names or variable paths; if given,
            only matching variables are logged (e.g. `["conv*", "*/kernel"]`).
        exclude: glob patterns of variables not to log.
        trainable_only: log only trainable variables; False adds the other
            float variables (BatchNormalization's moving statistics), logged
            as weights only.
        stats: glob patterns of the stats to store (e.g. `["*/l2",
            "update/ratio"]`); None stores them all.
        split_gates: one row per gate for LSTM (input, forget, cell, output)
            and GRU (update, reset, candidate) variables.
        histogram_bins: buckets per weight and gradient histogram.
        max_kernel_filters: the most filters a conv kernel grid shows.
        keep_initial_weights: keep W_0 to log `weight/dist_init` (costs a copy
            of the logged weights); None keeps it when the logged weights
            have at most `CHEAP_INITIAL_WEIGHTS` elements.
    """

    include: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    trainable_only: bool = True
    stats: Optional[Tuple[str, ...]] = None
    split_gates: bool = True
    histogram_bins: int = 32
    max_kernel_filters: int = 64
    keep_initial_weights: Optional[bool] = None

    def __post_init__(self):
        object.__setattr__(self, "include", _patterns("include", self.include))
        object.__setattr__(self, "exclude", _patterns("exclude", self.exclude))
        if self.stats is not None:
            object.__setattr__(self, "stats", _patterns("stats", self.stats))
        _positive_int("histogram_bins", self.histogram_bins)
        _positive_int("max_kernel_filters", self.max_kernel_filters)
        for flag in ("trainable_only", "split_gates"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False; got {getattr(self, flag)!r}.")

    @classmethod
    def resolve(cls, options: Optional["LogOptions"], option_kwargs: dict, caller: str) -> "LogOptions":
        """The options of `caller`: `options`, or one made of its fields passed
        as keywords. Unknown keywords are a TypeError that lists the known ones."""
        if options is not None:
            if option_kwargs:
                raise TypeError(f"{caller}: pass either options=LogOptions(...) or its fields as keywords, not both.")
            if not isinstance(options, cls):
                raise TypeError(f"{caller}: options must be a tb_weightnorm.LogOptions; got {type(options).__name__}.")
            return options
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(option_kwargs) - set(known))
        if unknown:
            hint = ""
            if caller == "tb_weightnorm.log" and "every_n_steps" in unknown:
                hint = " log() logs at every call: call it every N steps (or use histogram_every_n_steps)."
            raise TypeError(
                f"{caller} got unknown keyword argument(s) {', '.join(unknown)}; its options are "
                f"{', '.join(known)}.{hint}"
            )
        return cls(**option_kwargs)

    def keeps_initial_weights(self, elements: int) -> bool:
        if self.keep_initial_weights is None:
            return elements <= CHEAP_INITIAL_WEIGHTS
        return bool(self.keep_initial_weights)


def every(name: str, value) -> int:
    """Validates a logging frequency: 0 means never."""
    return _positive_int(name, value, allow_zero=True)
