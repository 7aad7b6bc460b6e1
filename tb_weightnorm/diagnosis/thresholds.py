"""The thresholds of the diagnosis rules, and where their defaults come from."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from tb_weightnorm.diagnosis.findings import SEVERITIES


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
        vanishing_ratio: a layer's relative update (update l2 / weight l2;
            where no update is logged, gradient l2 / weight l2) over the
            largest of any layer after it. Three orders of magnitude means the
            early layers learn a thousand times slower than the late ones
            (Glorot & Bengio, 2010, saw this in deep sigmoid networks). The
            update, not the gradient, where there is one: Adam and its kin
            rescale each gradient, so a faint one may still be applied in full.
        vanishing_floor: relative update (or gradient) below which a step
            cannot change the weights at all: the resolution of float32 is
            1.2e-7.
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

