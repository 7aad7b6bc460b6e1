"""The rules about gradients: NaN or Inf anywhere, exploding gradients,
gradients that vanish on their way back, and dead units.

Each rule is a function of a `RunView` and the `Thresholds` that returns
its findings.
"""

from __future__ import annotations

from typing import List, Mapping, Optional

import numpy as np

from tb_weightnorm import schema
from tb_weightnorm.diagnosis.episodes import (
    Episode,
    episodes_by_row,
    find_episode,
    make_finding,
    number_text,
    per_layer_findings,
    steps_text,
)
from tb_weightnorm.diagnosis.findings import Finding, severity_rank
from tb_weightnorm.diagnosis.run_view import RunView, rows_by_layer, trainable_rows
from tb_weightnorm.diagnosis.thresholds import Thresholds


_NONFINITE_KINDS = ("weight", "gradient", "update")


def nonfinite(view: RunView, t: Thresholds) -> List[Finding]:
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
        episode = Episode(first, last, first, float("inf"), "critical", 0.0, bool(global_bad[-1]))
        return [
            make_finding(
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
    episode = Episode(first, last, first, value, "critical", 0.0, bool(total[-1].any()))
    layer, variable = view.row_layers[row], view.variables[row]
    spread = (
        f"; {affected_then} of {rows} variables had them at that step"
        if affected_then > 1
        else ""
    )
    if affected_ever > affected_then:
        spread += f", {affected_ever} by step {view.step(last)}"
    return [
        make_finding(
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


def exploding_gradients(view: RunView, t: Thresholds) -> List[Finding]:
    """The gradient norm of the model spikes far above its recent median, or
    grows steadily by orders of magnitude."""
    gradient = view.global_col("gradient/l2")
    trainable = trainable_rows(view)
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
            (find_episode(spike, t.gradient_spike, above=True, sustain=1), "spike"),
            (find_episode(growth, t.gradient_growth, above=True, sustain=1), "growth"),
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
            f"The gradient norm jumped to {number_text(episode.value)}× its median of the previous "
            f"{t.spike_baseline} logged steps at step {view.step(episode.worst)} "
            f"({steps_text(view, episode)})."
        )
    else:
        what = (
            f"The gradient norm grew {number_text(episode.value)}× over its first logged steps "
            f"by step {view.step(episode.worst)} ({steps_text(view, episode)})."
        )
    return [
        make_finding(
            view, "exploding_gradients", episode, schema.GLOBAL_LAYER, "",
            what + where + " Try: a lower learning rate, gradient clipping (clipnorm or "
            "global_clipnorm), normalisation layers, and a check of the batch that came in "
            "at that step.",
        )
    ]


def _largest_gradient_change(view: RunView, index: int, t: Thresholds) -> str:
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


def _learning_signal(view: RunView, by_layer: Mapping[str, List[int]]) -> Optional[str]:
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


def vanishing_gradients(view: RunView, t: Thresholds) -> List[Finding]:
    """A layer's learning signal (its update where one is logged, else its
    gradient), relative to its weights, orders of magnitude below that of the
    layers after it, or below what float32 can apply."""
    # An embedding's gradient touches only the rows in the batch: its norm over
    # the whole table says nothing about how deep the layer is.
    trainable = [r for r in trainable_rows(view) if not view.variables[r].endswith("embeddings")]
    by_layer = rows_by_layer(view, trainable)
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
            e = find_episode(share, t.vanishing_ratio, above=False, sustain=t.sustain)
            if e is not None:
                slowest = names[i + 1 + int(np.nanargmax(np.nan_to_num(later[e.worst], nan=-1.0)))]
                episodes.append(
                    (
                        e,
                        f"The {what} of {layer}, relative to its weights, {_be(what)} {number_text(e.value)} "
                        f"of those of the later layer {slowest} ({steps_text(view, e)}): "
                        "the gradient fades on its way back through the network, so the early "
                        "layers barely learn.",
                    )
                )
        e = find_episode(relative[i], t.vanishing_floor, above=False, sustain=t.sustain)
        if e is not None:
            episodes.append(
                (
                    e,
                    f"The {what} of {layer} {_be(what)} {number_text(e.value)} of its weights' norm "
                    f"({steps_text(view, e)}): too small for an update to change the "
                    "weights in float32.",
                )
            )
        if episodes:
            e, text = max(episodes, key=lambda et: (severity_rank(et[0].severity), -et[0].first))
            findings.append(
                make_finding(
                    view, "vanishing_gradients", e, layer, "",
                    text + " Try: ReLU-family activations instead of sigmoid/tanh in deep "
                    "stacks, He or Glorot initialisation, BatchNormalization or "
                    "LayerNormalization, residual connections, or a shallower network.",
                )
            )
    return findings


def _be(noun: str) -> str:
    return "are" if noun.endswith("s") else "is"


def dead_units(view: RunView, t: Thresholds) -> List[Finding]:
    """A layer where a large share of units got a zero gradient for
    `sustain` logged steps in a row (dead ReLUs)."""
    dead = view.col("gradient/dead_fraction")
    if dead is None:
        return []
    rows = [r for r in range(len(view.rows)) if not np.isnan(dead[:, r]).all()]
    episodes = episodes_by_row({r: dead[:, r] for r in rows}, t.dead_fraction, above=True, sustain=t.sustain)
    return per_layer_findings(
        view, "dead_units", episodes, rows_by_layer(view, rows),
        lambda layer, variable, e, n, of: (
            f"{number_text(100 * e.value)}% of the units of {layer} got a zero gradient for "
            f"{e.last - e.first + 1} logged steps in a row "
            f"({steps_text(view, e)}; {variable}): its ReLUs are dead (they output 0 for "
            "every input and never recover), or a dead layer after it passes no gradient "
            "back. Try: a lower learning rate, LeakyReLU/GELU/ELU, He "
            "initialisation, checking for large negative biases, BatchNormalization before "
            "the activation."
        ),
    )



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

