"""Health diagnosis: turns a run's logged stats into findings.

A pure function of the numbers (numpy only: no TensorFlow, no TensorBoard, no
I/O), so the plugin, the command-line report and the callback all say the
same thing about the same run.

Every rule reads the columns of a `NormHistory` and reports, per variable,
layer or model, *since when* a condition has held, how bad it got and what to
try. A condition that must persist ("sustained") has to hold for
`Thresholds.sustain` logged steps in a row, so one noisy step does not raise
an alarm; a spike or a NaN needs only one step.

Where the default thresholds come from is written beside each of them in
`Thresholds`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm import metadata
from tb_weightnorm.history import NormHistory

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
    """0 for info, 1 for warning, 2 for critical."""
    return SEVERITIES.index(severity)


@dataclasses.dataclass(frozen=True)
class Band:
    """Where a measured value turns into a finding of each severity.

    A level set to None is never reported. For a rule that fires on high values
    (a spike) the levels rise from info to critical; for one that fires on low
    values (a vanishing gradient) they fall.
    """

    info: Optional[float] = None
    warning: Optional[float] = None
    critical: Optional[float] = None

    def levels(self) -> List[Tuple[str, float]]:
        """(severity, threshold) from the mildest to the most severe level set."""
        return [(s, getattr(self, s)) for s in SEVERITIES if getattr(self, s) is not None]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The thresholds of the diagnosis rules, and where the defaults come from.

    Override any of them with `Thresholds().replace(**{"update_ratio_high.warning": 0.05})`,
    `tb-weightnorm report --threshold update_ratio_high.warning=0.05`, or the
    callback's `thresholds=` argument.

    Attributes:
        sustain: logged steps in a row a sustained condition must hold before
            it is reported (update ratios, dead units, vanishing gradients,
            weight growth, stagnation). Five is short enough to report within a
            few logged steps of the onset and long enough to ride out one noisy
            batch.
        spike_baseline: how many previous logged steps the gradient norm is
            compared with (their median) to call a spike.
        warmup: logged steps before the spike rule judges: the first steps of
            training move fast and have no history to compare with.
        judged_share: a variable is judged by the update-ratio, growth and
            vanishing rules only while its weight norm is at least this share of
            the largest weight norm in its layer. Biases and BatchNorm betas
            start at zero, so their update-to-weight ratio is huge for reasons
            that say nothing about learning.
        gradient_spike: gradient norm over the median of its previous
            `spike_baseline` logged values. Gradient norms of healthy runs
            wander by a few times between batches; ten times is a spike, a
            thousand times is the run blowing up (the "exploding gradient" of
            Pascanu et al., 2013, "On the difficulty of training recurrent
            neural networks").
        gradient_growth: gradient norm (median of the last `sustain` logged
            steps) over its median in the first `sustain` logged steps: growing
            steadily by two orders of magnitude and more.
        vanishing_ratio: a layer's relative gradient (gradient l2 / weight l2)
            over the largest relative gradient of any layer after it. Three
            orders of magnitude means the early layers learn a thousand times
            slower than the late ones (Glorot & Bengio, 2010, saw this in deep
            sigmoid networks).
        vanishing_floor: relative gradient (gradient l2 / weight l2) below which
            a plain gradient step with a learning rate up to 1 cannot change the
            weights at all: the resolution of float32 is 1.2e-7.
        update_ratio_high: update l2 / weight l2 above which the learning rate
            is likely too high. The healthy band is around 1e-3 (CS231n,
            "ratio of weights:updates"); 1e-1 is a hundred times that, and
            above 1 every step replaces the weights.
        update_ratio_low: update l2 / weight l2 below which the layer barely
            learns: ten and a hundred times under the healthy 1e-3.
        dead_fraction: share of a layer's units whose incoming weights all got a
            zero gradient (dead ReLUs). Half the layer dead is a warning; all
            of it (95 % and more) means nothing below it learns.
        weight_growth: weight norm over its value when first judged, while it
            keeps rising: ten times and still growing is growth without bound
            (no weight decay on a loss that rewards large weights, or a
            learning rate on the edge of divergence).
    """

    sustain: int = 5
    spike_baseline: int = 10
    warmup: int = 3
    judged_share: float = 0.1
    gradient_spike: Band = Band(warning=10.0, critical=1000.0)
    gradient_growth: Band = Band(warning=100.0, critical=10000.0)
    vanishing_ratio: Band = Band(warning=1e-3, critical=1e-6)
    vanishing_floor: Band = Band(warning=1e-7)
    update_ratio_high: Band = Band(warning=1e-1, critical=1.0)
    update_ratio_low: Band = Band(info=1e-4, warning=1e-5)
    dead_fraction: Band = Band(warning=0.5, critical=0.95)
    weight_growth: Band = Band(warning=10.0, critical=1000.0)

    def replace(self, **overrides: float) -> "Thresholds":
        """A copy with some thresholds changed.

        Args:
            **overrides: `name=value` for a number (`sustain=8`), or
                `"band.level"=value` for one level of a band
                (`**{"dead_fraction.warning": 0.3}`); a level set to None is
                switched off.

        Example:

        >>> Thresholds().replace(**{"update_ratio_high.warning": 0.05}).update_ratio_high.warning
        0.05
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: Dict[str, object] = {}
        for key, value in overrides.items():
            name, _, level = key.partition(".")
            if name not in fields:
                raise ValueError(
                    f"unknown threshold {name!r}; known thresholds: {', '.join(fields)}"
                )
            current = changes.get(name, getattr(self, name))
            if isinstance(current, Band):
                if level not in SEVERITIES:
                    raise ValueError(
                        f"threshold {name!r} has levels {', '.join(SEVERITIES)}: "
                        f"write {name}.warning=VALUE"
                    )
                changes[name] = dataclasses.replace(
                    current, **{level: None if value is None else float(value)}
                )
            elif level:
                raise ValueError(f"threshold {name!r} is a single number: write {name}=VALUE")
            else:
                changes[name] = type(current)(value)
        return dataclasses.replace(self, **changes)


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
        return dataclasses.asdict(self)


def sort_findings(findings: Iterable[Finding]) -> List[Finding]:
    """Most severe first, then earliest first."""
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), f.first_step, f.rule))


def diagnose(history: NormHistory, thresholds: Optional[Thresholds] = None) -> List[Finding]:
    """The findings of one run, most severe first.

    Args:
        history: the run's logged norm tables.
        thresholds: the rules' thresholds; the defaults when None.

    Returns:
        A list of `Finding`, most severe first, then earliest first.

    Example:

    ```python
    for history in tb_weightnorm.export.histories("logs"):
        for finding in diagnose(history):
            print(finding.severity, finding.layer, finding.message)
    ```
    """
    thresholds = thresholds or Thresholds()
    if len(history.steps) == 0:
        return []
    view = _View(history)
    findings: List[Finding] = []
    for rule in _RULES:
        findings.extend(rule(view, thresholds))
    return sort_findings(findings)


class _View:
    """The columns of a history the rules read (being written)."""

    def __init__(self, history: NormHistory):
        self.history = history


_RULES: Sequence[Callable[[_View, Thresholds], Iterable[Finding]]] = ()
