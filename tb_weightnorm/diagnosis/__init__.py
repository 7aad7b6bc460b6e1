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

import collections
import dataclasses
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm import schema
from tb_weightnorm.read.history import NormHistory

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
    for history in tb_weightnorm.read.export.histories("logs"):
        for finding in diagnose(history):
            print(finding.severity, finding.layer, finding.message)
    ```
    """
    thresholds = thresholds or Thresholds()
    if len(history.steps) == 0:
        return []
    findings = _nonfinite(_View(history), thresholds)
    if findings:
        # After the first NaN the numbers describe the wreckage, not its cause:
        # the other rules judge the steps before it.
        history = history.head(int(history.step_index(findings[0].first_step)))
    view = _View(history)
    for rule in _RULES:
        findings.extend(rule(view, thresholds))
    return sort_findings(_without_echoes(findings))


def _without_echoes(findings: List[Finding]) -> List[Finding]:
    """Drops findings another finding already explains: a layer whose units are
    all dead also stands still."""
    dead = {f.layer for f in findings if f.rule == "dead_units"}
    return [f for f in findings if not (f.rule == "stagnant_layer" and f.layer in dead)]



# -- reading the history --------------------------------------------------------


# Columns a `_View` keeps: each is float64 [steps, variables], 16 MB for
# 1,000 variables over 2,000 logged steps.
_RECENT_COLUMNS = 4


class _View:
    """The columns of a history that the rules read, by variable and by layer.

    Rows are the variables (and gates) in model order; the `(global)` row is
    kept apart. Arrays are float64 [steps, rows]; NaN where not measured.
    """

    def __init__(self, history: NormHistory):
        self.history = history
        self.steps = history.steps
        self.rows = [i for i, v in enumerate(history.variables) if v != schema.GLOBAL_ROW]
        self.variables = [history.variables[i] for i in self.rows]
        self.row_layers = [history.layers[i] for i in self.rows]
        # Layers in model order (the order their first variable was logged in).
        self.layers: Dict[str, List[int]] = {}
        for r, layer in enumerate(self.row_layers):
            self.layers.setdefault(layer, []).append(r)
        self._global = history.global_index()
        self._judged: Optional[np.ndarray] = None
        # The rules read the same few columns over and over (a layer's norm
        # per layer): the latest ones stay at hand. Callers never write to them.
        self._recent: "collections.OrderedDict[str, Optional[np.ndarray]]" = collections.OrderedDict()

    def col(self, stat: str) -> Optional[np.ndarray]:
        if stat in self._recent:
            self._recent.move_to_end(stat)
            return self._recent[stat]
        column = self.history.column(stat)
        found = self._recent[stat] = None if column is None else column[:, self.rows]
        if len(self._recent) > _RECENT_COLUMNS:
            self._recent.popitem(last=False)
        return found

    def global_col(self, stat: str) -> Optional[np.ndarray]:
        if self._global is None or stat not in self.history.stats:
            return None
        return self.history.values[:, self._global, self.history.stats.index(stat)].astype(np.float64)

    def layer_norm(self, stat: str, rows: Sequence[int]) -> Optional[np.ndarray]:
        """The l2 norm of several rows together, per step: sqrt of the sum of squares.
        NaN at steps where none of them was measured."""
        column = self.col(stat)
        if column is None:
            return None
        part = column[:, list(rows)]
        measured = ~np.isnan(part).all(axis=1)
        out = np.sqrt(np.nansum(part * part, axis=1))
        return np.where(measured, out, np.nan)

    def judged(self, thresholds: Thresholds) -> np.ndarray:
        """[steps, rows] bool: rows whose weight norm is a fair yardstick at that
        step (see `Thresholds.judged_share`)."""
        if self._judged is None:
            weight = self.col("weight/l2")
            judged = np.zeros((len(self.steps), len(self.rows)), bool)
            if weight is not None:
                for rows in self.layers.values():
                    part = weight[:, rows]
                    with np.errstate(invalid="ignore"):
                        largest = np.nanmax(np.where(np.isnan(part), -np.inf, part), axis=1)
                        judged[:, rows] = (part > 0) & (part >= thresholds.judged_share * largest[:, None])
            self._judged = judged
        return self._judged

    def step(self, index: int) -> int:
        return int(self.steps[index])


# -- episodes: when a condition held --------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Episode:
    """Where a measured series crossed a band for long enough."""

    first: int  # index of the first step
    last: int  # index of the last step
    worst: int  # index of the worst step
    value: float
    severity: str
    threshold: float
    ongoing: bool


def _runs(mask: np.ndarray) -> List[Tuple[int, int]]:
    """(start, end) index pairs, inclusive, of the runs of True in `mask`."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _crosses(x: np.ndarray, threshold: float, above: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (x >= threshold) if above else (x <= threshold)


def _episode(x: np.ndarray, band: Band, *, above: bool, sustain: int) -> Optional[_Episode]:
    """The episode of series `x` (NaN: not judged at that step) in `band`.

    The finding's steps are those of the runs of at least `sustain` logged
    steps past the mildest level; its severity is the most severe level that
    also held that long.
    """
    levels = band.levels()
    if not levels or len(x) == 0:
        return None
    mildest = [r for r in _runs(_crosses(x, levels[0][1], above)) if r[1] - r[0] + 1 >= sustain]
    if not mildest:
        return None
    severity, threshold = levels[0]
    for level, t in levels[1:]:
        if any(b - a + 1 >= sustain for a, b in _runs(_crosses(x, t, above))):
            severity, threshold = level, t
    inside = np.zeros(len(x), bool)
    for a, b in mildest:
        inside[a : b + 1] = True
    candidates = np.where(inside, x, np.nan)
    worst = int(np.nanargmax(candidates) if above else np.nanargmin(candidates))
    return _Episode(
        first=mildest[0][0],
        last=mildest[-1][1],
        worst=worst,
        value=float(x[worst]),
        severity=severity,
        threshold=threshold,
        ongoing=mildest[-1][1] == len(x) - 1,
    )


def _episodes_by_row(
    series: Mapping[int, np.ndarray], band: Band, *, above: bool, sustain: int
) -> Dict[int, _Episode]:
    """The episode of each row's series that has one."""
    out = {}
    for row, x in series.items():
        episode = _episode(x, band, above=above, sustain=sustain)
        if episode is not None:
            out[row] = episode
    return out


def _rolling_median_before(x: np.ndarray, window: int, minimum: int) -> np.ndarray:
    """For each step, the median of up to `window` finite values before it
    (NaN with fewer than `minimum` of them)."""
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        previous = x[max(0, i - window) : i]
        previous = previous[np.isfinite(previous)]
        if len(previous) >= minimum:
            out[i] = np.median(previous)
    return out


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def _steps_text(view: _View, episode: _Episode) -> str:
    first, last = view.step(episode.first), view.step(episode.last)
    span = f"step {first}" if first == last else f"steps {first}–{last}"
    return span + (", still ongoing" if episode.ongoing and first != last else "")


def _finding(view: _View, rule: str, episode: _Episode, layer: str, variable: str, message: str) -> Finding:
    return Finding(
        rule=rule,
        severity=episode.severity,
        layer=layer,
        variable=variable,
        first_step=view.step(episode.first),
        last_step=view.step(episode.last),
        value=episode.value,
        threshold=episode.threshold,
        message=message,
        ongoing=episode.ongoing,
    )


def _per_layer(
    view: _View,
    rule: str,
    episodes: Mapping[int, _Episode],
    judged_rows: Mapping[str, Sequence[int]],
    message: Callable[[str, str, _Episode, int, int], str],
) -> List[Finding]:
    """One finding per layer from per-row episodes.

    The layer's worst episode speaks for it; when every judged row of the
    layer has one, the finding is about the whole layer (variable empty).
    `message(layer, variable, episode, n_rows_with_it, n_judged_rows)`.
    """
    findings = []
    for layer, rows in view.layers.items():
        hit = [r for r in rows if r in episodes]
        if not hit:
            continue
        worst = max(hit, key=lambda r: (severity_rank(episodes[r].severity), -episodes[r].first))
        episode = episodes[worst]
        merged = dataclasses.replace(
            episode,
            first=min(episodes[r].first for r in hit),
            last=max(episodes[r].last for r in hit),
            ongoing=any(episodes[r].ongoing for r in hit),
        )
        n_judged = len(judged_rows.get(layer, rows))
        variable = "" if len(hit) == n_judged and n_judged > 1 else view.variables[worst]
        text = message(layer, variable or view.variables[worst], merged, len(hit), n_judged)
        findings.append(_finding(view, rule, merged, layer, variable, text))
    return findings


def _trainable_rows(view: _View) -> List[int]:
    """Rows the optimizer updates: those with a measured update or gradient."""
    for stat in ("update/l2", "gradient/l2"):
        column = view.col(stat)
        if column is not None:
            return [r for r in range(len(view.rows)) if not np.isnan(column[:, r]).all()]
    return []


def _rows_by_layer(view: _View, rows: Iterable[int]) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    for r in rows:
        out.setdefault(view.row_layers[r], []).append(r)
    return out


# -- the rules ------------------------------------------------------------------

_NONFINITE_KINDS = ("weight", "gradient", "update")


def _nonfinite(view: _View, t: Thresholds) -> List[Finding]:
    """NaN or Inf anywhere: one critical finding at the first step and the
    first layer (in model order) it appeared in."""
    steps, rows = len(view.steps), len(view.rows)
    bad_by_kind = {}
    for kind in _NONFINITE_KINDS:
        count = np.zeros((steps, rows))
        for stat in ("nan_count", "inf_count"):
            column = view.col(f"{kind}/{stat}")
            if column is not None:
                count += np.nan_to_num(column, nan=0.0)
        l2 = view.col(f"{kind}/l2")
        if l2 is not None:
            # A norm that overflowed float32 is as good as infinite.
            count += np.isinf(l2)
        bad_by_kind[kind] = count
    total = sum(bad_by_kind.values())
    bad_steps = np.flatnonzero((total > 0).any(axis=1))
    global_bad = np.zeros(steps, bool)
    for stat in ("weight/l2", "gradient/l2"):
        column = view.global_col(stat)
        if column is not None:
            global_bad |= np.isinf(column)
    if len(bad_steps) == 0:
        if not global_bad.any():
            return []
        first = int(np.flatnonzero(global_bad)[0])
        last = int(np.flatnonzero(global_bad)[-1])
        episode = _Episode(first, last, first, float("inf"), "critical", 0.0, bool(global_bad[-1]))
        return [
            _finding(
                view, "nonfinite", episode, schema.GLOBAL_LAYER, "",
                f"The global norm became infinite at step {view.step(first)} in variables that "
                "are not logged. " + _NONFINITE_FIX,
            )
        ]
    first, last = int(bad_steps[0]), int(bad_steps[-1])
    row = int(np.flatnonzero(total[first] > 0)[0])
    kinds = [k for k in _NONFINITE_KINDS if bad_by_kind[k][first, row] > 0]
    affected_then = int((total[first] > 0).sum())
    affected_ever = int((total > 0).any(axis=0).sum())
    value = float(total[first, row])
    episode = _Episode(first, last, first, value, "critical", 0.0, bool(total[-1].any()))
    layer, variable = view.row_layers[row], view.variables[row]
    spread = (
        f"; {affected_then} of {rows} variables had them at that step"
        if affected_then > 1
        else ""
    )
    if affected_ever > affected_then:
        spread += f", {affected_ever} by step {view.step(last)}"
    return [
        _finding(
            view, "nonfinite", episode, layer, variable,
            f"NaN/Inf first appeared at step {view.step(first)} in the "
            f"{' and '.join(k + 's' for k in kinds)} of {layer} ({variable}): "
            f"{int(value)} non-finite values{spread}. " + _NONFINITE_FIX,
        )
    ]


_NONFINITE_FIX = (
    "Try: a lower learning rate; gradient clipping (clipnorm=1.0); a loss that "
    "cannot take log(0) or divide by zero (add an epsilon, use from_logits=True); "
    "checking the inputs for NaN; under mixed precision, a LossScaleOptimizer. "
    "tf.debugging.enable_check_numerics() names the op that made the first NaN."
)


def _exploding_gradients(view: _View, t: Thresholds) -> List[Finding]:
    """The gradient norm of the model spikes far above its recent median, or
    grows steadily by orders of magnitude."""
    gradient = view.global_col("gradient/l2")
    trainable = _trainable_rows(view)
    if gradient is None or np.isnan(gradient).all():
        gradient = view.layer_norm("gradient/l2", trainable) if trainable else None
    if gradient is None:
        return []
    gradient = np.where(np.isfinite(gradient) & (gradient > 0), gradient, np.nan)
    baseline = _rolling_median_before(gradient, t.spike_baseline, t.warmup)
    spike = gradient / baseline
    n = t.sustain
    growth = np.full(len(gradient), np.nan)
    if len(gradient) >= 2 * n:
        start = np.nanmedian(gradient[:n]) if np.isfinite(gradient[:n]).any() else np.nan
        for i in range(2 * n - 1, len(gradient)):
            window = gradient[i - n + 1 : i + 1]
            if np.isfinite(window).any():
                growth[i] = np.nanmedian(window) / start
    episodes = [
        (e, kind)
        for e, kind in (
            (_episode(spike, t.gradient_spike, above=True, sustain=1), "spike"),
            (_episode(growth, t.gradient_growth, above=True, sustain=1), "growth"),
        )
        if e is not None
    ]
    if not episodes:
        return []
    episode, kind = max(episodes, key=lambda ek: (severity_rank(ek[0].severity), -ek[0].first))
    culprit = _largest_gradient_change(view, episode.worst, t)
    where = f" It rose most in {culprit}." if culprit else ""
    if kind == "spike":
        what = (
            f"The gradient norm jumped to {_fmt(episode.value)}× its median of the previous "
            f"{t.spike_baseline} logged steps at step {view.step(episode.worst)} "
            f"({_steps_text(view, episode)})."
        )
    else:
        what = (
            f"The gradient norm grew {_fmt(episode.value)}× over its first logged steps "
            f"by step {view.step(episode.worst)} ({_steps_text(view, episode)})."
        )
    return [
        _finding(
            view, "exploding_gradients", episode, schema.GLOBAL_LAYER, "",
            what + where + " Try: a lower learning rate, gradient clipping (clipnorm or "
            "global_clipnorm), normalisation layers, and a check of the batch that came in "
            "at that step.",
        )
    ]


def _largest_gradient_change(view: _View, index: int, t: Thresholds) -> str:
    """The layer whose gradient norm rose most at step `index` against its own
    median before it."""
    best, best_factor = "", 0.0
    for layer, rows in view.layers.items():
        norm = view.layer_norm("gradient/l2", rows)
        if norm is None:
            return ""
        before = norm[max(0, index - t.spike_baseline) : index]
        before = before[np.isfinite(before) & (before > 0)]
        if len(before) and np.isfinite(norm[index]):
            factor = norm[index] / np.median(before)
            if factor > best_factor:
                best, best_factor = layer, factor
    return best


def _learning_signal(view: _View, by_layer: Mapping[str, List[int]]) -> Optional[str]:
    """What says how fast each layer learns: "update/l2" where every layer has
    its updates logged, else "gradient/l2" (None if neither is).

    An adaptive optimizer (Adam, RMSprop, Adagrad) divides each gradient by
    its own running scale, so a layer whose gradient is a thousandth of the
    next one's may still move as fast: only the update tells. Under plain SGD
    the two say the same (update = learning rate × gradient).
    """
    update = view.col("update/l2")
    if update is not None and all(np.isfinite(update[:, rows]).any() for rows in by_layer.values()):
        return "update/l2"
    return "gradient/l2" if view.col("gradient/l2") is not None else None


def _vanishing_gradients(view: _View, t: Thresholds) -> List[Finding]:
    """A layer's learning signal (its update where one is logged, else its
    gradient), relative to its weights, orders of magnitude below that of the
    layers after it, or below what float32 can apply."""
    # An embedding's gradient touches only the rows in the batch: its norm over
    # the whole table says nothing about how deep the layer is.
    trainable = [r for r in _trainable_rows(view) if not view.variables[r].endswith("embeddings")]
    by_layer = _rows_by_layer(view, trainable)
    names = list(by_layer)
    signal = _learning_signal(view, by_layer)
    if signal is None:
        return []
    what = "updates" if signal == "update/l2" else "gradient"
    relative = []
    for layer in names:
        moved = view.layer_norm(signal, by_layer[layer])
        weight = view.layer_norm("weight/l2", by_layer[layer])
        if moved is None or weight is None:
            return []
        with np.errstate(divide="ignore", invalid="ignore"):
            r = moved / weight
        # Zero is a dead, disconnected or frozen layer (other rules), not a faint one.
        relative.append(np.where(np.isfinite(r) & (r > 0), r, np.nan))
    findings = []
    for i, layer in enumerate(names):
        episodes = []
        if i + 1 < len(names):
            later = np.stack(relative[i + 1 :], axis=1)
            with np.errstate(invalid="ignore"):
                later_max = np.where(np.isnan(later).all(axis=1), np.nan, np.nanmax(np.nan_to_num(later, nan=-1.0), axis=1))
                share = relative[i] / later_max
            e = _episode(share, t.vanishing_ratio, above=False, sustain=t.sustain)
            if e is not None:
                slowest = names[i + 1 + int(np.nanargmax(np.nan_to_num(later[e.worst], nan=-1.0)))]
                episodes.append(
                    (
                        e,
                        f"The {what} of {layer}, relative to its weights, {_be(what)} {_fmt(e.value)} "
                        f"of those of the later layer {slowest} ({_steps_text(view, e)}): "
                        "the gradient fades on its way back through the network, so the early "
                        "layers barely learn.",
                    )
                )
        e = _episode(relative[i], t.vanishing_floor, above=False, sustain=t.sustain)
        if e is not None:
            episodes.append(
                (
                    e,
                    f"The {what} of {layer} {_be(what)} {_fmt(e.value)} of its weights' norm "
                    f"({_steps_text(view, e)}): too small for an update to change the "
                    "weights in float32.",
                )
            )
        if episodes:
            e, text = max(episodes, key=lambda et: (severity_rank(et[0].severity), -et[0].first))
            findings.append(
                _finding(
                    view, "vanishing_gradients", e, layer, "",
                    text + " Try: ReLU-family activations instead of sigmoid/tanh in deep "
                    "stacks, He or Glorot initialisation, BatchNormalization or "
                    "LayerNormalization, residual connections, or a shallower network.",
                )
            )
    return findings


def _be(noun: str) -> str:
    return "are" if noun.endswith("s") else "is"


def _judged_series(view: _View, stat: str, t: Thresholds, rows: Iterable[int]) -> Dict[int, np.ndarray]:
    column = view.col(stat)
    if column is None:
        return {}
    judged = view.judged(t)
    return {r: np.where(judged[:, r], column[:, r], np.nan) for r in rows}


def _update_ratio(view: _View, t: Thresholds) -> List[Finding]:
    trainable = _trainable_rows(view)
    series = _judged_series(view, "update/ratio", t, trainable)
    judged_rows = _rows_by_layer(view, [r for r in trainable if view.judged(t)[:, r].any()])
    findings: List[Finding] = []
    high = _episodes_by_row(series, t.update_ratio_high, above=True, sustain=t.sustain)
    findings += _per_layer(
        view, "update_ratio_high", high, judged_rows,
        lambda layer, variable, e, n, of: (
            f"Updates of {_whose(layer, variable, n, of)} are {_fmt(e.value)} of the weights' "
            f"norm per step ({_steps_text(view, e)}); around 1e-3 is healthy. The learning "
            "rate is likely too high: lower it (3–10× to start), or add warm-up or clipping."
        ),
    )
    # A ratio of exactly 0 is a layer that does not change at all: stagnant_layer.
    moving = {r: np.where(x > 0, x, np.nan) for r, x in series.items()}
    low = _episodes_by_row(moving, t.update_ratio_low, above=False, sustain=t.sustain)
    why = _why_low(low, moving, judged_rows, view, t)
    if why is not None:
        low = {r: dataclasses.replace(e, severity="info", threshold=t.update_ratio_low.levels()[0][1]) for r, e in low.items()}

    def low_message(layer, variable, e, n, of):
        text = (
            f"Updates of {_whose(layer, variable, n, of)} are only {_fmt(e.value)} of the "
            f"weights' norm per step ({_steps_text(view, e)}); around 1e-3 is healthy. "
        )
        if why == "schedule":
            return text + (
                "Every layer's updates fell from healthy values together, as they do when a "
                "learning-rate schedule decays: expected near the end of a schedule, but if "
                "there is still much training ahead, the schedule ends too early."
            )
        if why == "fine-tuning":
            return text + (
                "A later fit trains with a lower learning rate, or unfroze the layer to "
                "fine-tune it: small updates are what fine-tuning wants; raise the learning "
                "rate if it should learn faster."
            )
        return text + (
            "The layer barely learns: raise the learning rate, check its schedule has not "
            "decayed to nothing, or look for vanishing gradients below it."
        )

    findings += _per_layer(view, "update_ratio_low", low, judged_rows, low_message)
    return findings


def _why_low(low, ratios, judged_rows, view: _View, t: Thresholds) -> Optional[str]:
    """Why update ratios are low, where the logs tell a reason that is not a
    problem: "schedule" when more than half of the judged layers went low
    after starting healthy, as a decaying learning rate makes them;
    "fine-tuning" when every low row either went low after starting healthy
    or was first logged only in a later fit (unfrozen to fine-tune, which
    the guides do with a learning rate kept low on purpose). None otherwise:
    low from the start is a learning rate too small."""
    weight = view.col("weight/l2")
    if not low or not judged_rows or weight is None:
        return None
    healthy_start = t.update_ratio_low.levels()[0][1]
    fell = joined = 0
    for row in low:
        known = ratios[row][np.isfinite(ratios[row])]
        if len(known) >= t.sustain and np.median(known[: t.sustain]) >= healthy_start:
            fell += 1
        elif not np.isfinite(weight[0, row]):
            joined += 1
        else:
            return None
    if joined:
        return "fine-tuning"
    layers_low = {view.row_layers[r] for r in low}
    return "schedule" if 2 * len(layers_low) > len(judged_rows) else None


def _whose(layer: str, variable: str, n: int, of: int) -> str:
    if n == of and of > 1:
        return f"every variable of {layer}"
    if n > 1:
        return f"{n} variables of {layer} (worst {variable})"
    return f"{layer} ({variable})"


def _dead_units(view: _View, t: Thresholds) -> List[Finding]:
    dead = view.col("gradient/dead_fraction")
    if dead is None:
        return []
    rows = [r for r in range(len(view.rows)) if not np.isnan(dead[:, r]).all()]
    episodes = _episodes_by_row({r: dead[:, r] for r in rows}, t.dead_fraction, above=True, sustain=t.sustain)
    return _per_layer(
        view, "dead_units", episodes, _rows_by_layer(view, rows),
        lambda layer, variable, e, n, of: (
            f"{_fmt(100 * e.value)}% of the units of {layer} got a zero gradient for "
            f"{e.last - e.first + 1} logged steps in a row "
            f"({_steps_text(view, e)}; {variable}): its ReLUs are dead (they output 0 for "
            "every input and never recover), or a dead layer after it passes no gradient "
            "back. Try: a lower learning rate, LeakyReLU/GELU/ELU, He "
            "initialisation, checking for large negative biases, BatchNormalization before "
            "the activation."
        ),
    )


def _weight_norm_growth(view: _View, t: Thresholds) -> List[Finding]:
    trainable = _trainable_rows(view)
    series = _judged_series(view, "weight/l2", t, trainable)
    episodes = {}
    for r, w in series.items():
        known = np.flatnonzero(np.isfinite(w))
        if len(known) < 2 * t.sustain:
            continue
        start = np.median(w[known[: t.sustain]])
        rising = np.concatenate([[False], w[1:] >= w[:-1]])
        growth = np.where(rising, w / start, np.nan)
        e = _episode(growth, t.weight_growth, above=True, sustain=t.sustain)
        if e is not None:
            episodes[r] = e
    judged_rows = _rows_by_layer(view, [r for r in trainable if view.judged(t)[:, r].any()])
    return _per_layer(
        view, "weight_norm_growth", episodes, judged_rows,
        lambda layer, variable, e, n, of: (
            f"The weight norm of {_whose(layer, variable, n, of)} grew {_fmt(e.value)}× since "
            f"logging began and keeps rising ({_steps_text(view, e)}). Try: weight decay "
            "(AdamW, or a kernel_regularizer), a lower learning rate, normalisation after the "
            "layer, and a check that the loss cannot be lowered just by scaling weights up."
        ),
    )


def _stagnant_layer(view: _View, t: Thresholds) -> List[Finding]:
    update = view.col("update/l2")
    if update is None:
        return []
    gradient = view.col("gradient/l2")
    trainable = _trainable_rows(view)
    episodes = _episodes_by_row(
        {r: update[:, r] for r in trainable}, Band(warning=0.0), above=False, sustain=t.sustain
    )
    by_layer = _rows_by_layer(view, trainable)
    # Stagnant means the whole layer stands still; one frozen variable in a
    # learning layer is left to the other rules.
    episodes = {
        r: e for r, e in episodes.items()
        if all(q in episodes for q in by_layer[view.row_layers[r]])
    }

    def message(layer, variable, e, n, of):
        seen = None if gradient is None else gradient[e.first : e.last + 1, by_layer[layer]]
        if seen is not None and np.isfinite(seen).any() and np.nanmax(np.where(np.isfinite(seen), seen, 0.0)) > 0:
            why = (
                "although its gradient is not zero: the optimizer applies nothing to it (a "
                "learning rate of 0, a schedule decayed to 0, or a constraint that resets it). If "
                "the layer is meant to be frozen, set layer.trainable = False and recompile; "
                "otherwise fix the learning rate."
            )
        elif seen is not None and np.isfinite(seen).any():
            why = (
                "because its gradient is exactly zero: nothing after it passes a gradient back "
                "(dead units, a stop_gradient, or an output that does not reach the loss)."
            )
        else:
            # Missing is not zero: no gradient was logged for it at all.
            why = (
                "and no gradient was logged for it: it got none (None: it does not reach the "
                "loss), or the gradients were not given to the logging call."
            )
        return (
            f"The weights of {layer} have not changed for "
            f"{e.last - e.first + 1} logged steps ({_steps_text(view, e)}), " + why
        )

    return _per_layer(view, "stagnant_layer", episodes, by_layer, message)


# Run after `_nonfinite`, on the steps before the first NaN.
_RULES: Sequence[Callable[[_View, Thresholds], Iterable[Finding]]] = (
    _exploding_gradients,
    _vanishing_gradients,
    _update_ratio,
    _dead_units,
    _weight_norm_growth,
    _stagnant_layer,
)
