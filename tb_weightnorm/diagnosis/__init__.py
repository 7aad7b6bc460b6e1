"""Health diagnosis: turns a run's logged stats into findings.

A pure function of the numbers (numpy only: no TensorFlow, no TensorBoard,
no protobuf, no I/O), so the plugin, the command-line report and the
callback all say the same thing about the same run.

Every rule reads the columns of a `NormHistory` and reports, per variable,
layer or model, *since when* a condition has held, how bad it got and what to
try. A condition that must persist ("sustained") has to hold for
`Thresholds.sustain` logged steps in a row, so one noisy step does not raise
an alarm; a spike or a NaN needs only one step.

Where the default thresholds come from is written beside each of them in
`Thresholds`. The package by role: `findings` (what a finding is and the
order findings are listed in), `thresholds`, `run_view` (the columns the
rules read, by variable and by layer), `episodes` (when a condition held),
and the rules in `gradient_rules` and `weight_rules`.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Sequence

from tb_weightnorm.diagnosis.findings import RULES, SEVERITIES, Finding, severity_rank, sort_findings
from tb_weightnorm.diagnosis.gradient_rules import dead_units, exploding_gradients, nonfinite, vanishing_gradients
from tb_weightnorm.diagnosis.run_view import RunView
from tb_weightnorm.diagnosis.thresholds import Band, Thresholds
from tb_weightnorm.diagnosis.weight_rules import stagnant_layer, update_ratio, weight_norm_growth
from tb_weightnorm.read.history import NormHistory

__all__ = ["RULES", "SEVERITIES", "Band", "Finding", "Thresholds", "diagnose", "severity_rank", "sort_findings"]

# Run after `nonfinite`, on the steps before the first NaN.
_RULES: Sequence[Callable[[RunView, Thresholds], Iterable[Finding]]] = (
    exploding_gradients,
    vanishing_gradients,
    update_ratio,
    dead_units,
    weight_norm_growth,
    stagnant_layer,
)


def diagnose(history: NormHistory, thresholds: Optional[Thresholds] = None) -> List[Finding]:
    """The findings of one run, most severe first.

    Args:
        history: the run's logged norm tables.
        thresholds: the rules' thresholds; the defaults when None.

    Returns:
        A list of `Finding`, most severe first, then earliest first.

    Example:

    ```python
    for history in tb_weightnorm.read.export.histories("logs"):
        for finding in diagnose(history):
            print(finding.severity, finding.layer, finding.message)
    ```
    """
    thresholds = thresholds or Thresholds()
    if len(history.steps) == 0:
        return []
    findings = nonfinite(RunView(history), thresholds)
    if findings:
        # After the first NaN the numbers describe the wreckage, not its cause:
        # the other rules judge the steps before it.
        history = history.head(int(history.step_index(findings[0].first_step)))
    view = RunView(history)
    for rule in _RULES:
        findings.extend(rule(view, thresholds))
    return sort_findings(_without_echoes(findings))


def _without_echoes(findings: List[Finding]) -> List[Finding]:
    """Drops findings another finding already explains: a layer whose units are
    all dead also stands still."""
    dead = {f.layer for f in findings if f.rule == "dead_units"}
    return [f for f in findings if not (f.rule == "stagnant_layer" and f.layer in dead)]
