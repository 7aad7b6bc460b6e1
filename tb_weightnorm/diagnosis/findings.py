"""What the diagnosis reports: the rules, the severities and a `Finding`,
and the order findings are listed in (most severe first, then earliest)."""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List

SEVERITIES = ("info", "warning", "critical")

RULES = (
    "nonfinite",
    "exploding_gradients",
    "vanishing_gradients",
    "update_ratio_high",
    "update_ratio_low",
    "dead_units",
    "weight_norm_growth",
    "stagnant_layer",
)


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical.

    Args:
        severity: one of `SEVERITIES`.

    Example:

    >>> severity_rank("critical") > severity_rank("info")
    True
    """
    return SEVERITIES.index(severity)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the diagnosis found wrong in a run.

    Attributes:
        rule: which rule found it, one of `RULES`.
        severity: `critical`, `warning` or `info`.
        layer: the layer it is about; `(model)` for the whole model.
        variable: the variable it is about; empty when it is about every
            variable of `layer` (or the whole model).
        first_step: the first logged step the condition held.
        last_step: the last logged step it held.
        value: the worst value measured over those steps.
        threshold: the threshold `value` crossed for this severity.
        message: what was found and what to try, in plain words.
        ongoing: whether the condition still held at the run's last logged step.
    """

    rule: str
    severity: str
    layer: str
    variable: str
    first_step: int
    last_step: int
    value: float
    threshold: float
    message: str
    ongoing: bool = False

    def to_dict(self) -> Dict[str, object]:
        """The finding's fields by name, as `dataclasses.asdict` gives them."""
        return dataclasses.asdict(self)


def sort_findings(findings: Iterable[Finding]) -> List[Finding]:
    """Most severe first, then earliest first, then by rule name.

    Args:
        findings: findings of one run or of several.

    Example:

    >>> [f.severity for f in sort_findings(found)]  # doctest: +SKIP
    ['critical', 'warning', 'warning', 'info']
    """
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), f.first_step, f.rule))
