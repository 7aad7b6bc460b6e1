"""The rules about how the weights move: updates too large or too small for
the weights, weight norms that grow without bound, and layers that stand
still.

Each rule is a function of a `RunView` and the `Thresholds` that returns
its findings.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from tb_weightnorm.diagnosis.episodes import episodes_by_row, find_episode, number_text, per_layer_findings, steps_text
from tb_weightnorm.diagnosis.findings import Finding
from tb_weightnorm.diagnosis.run_view import RunView, judged_series, rows_by_layer, trainable_rows
from tb_weightnorm.diagnosis.thresholds import Band, Thresholds

def update_ratio(view: RunView, t: Thresholds) -> List[Finding]:
    """Updates too large for the weights (`update_ratio_high`: the learning
    rate is likely too high) or too small (`update_ratio_low`), per layer;
    low updates a decaying schedule or fine-tuning explains are only info."""
    trainable = trainable_rows(view)
    series = judged_series(view, "update/ratio", t, trainable)
    judged_rows = rows_by_layer(view, [r for r in trainable if view.judged(t)[:, r].any()])
    findings: List[Finding] = []
    high = episodes_by_row(series, t.update_ratio_high, above=True, sustain=t.sustain)
    findings += per_layer_findings(
        view, "update_ratio_high", high, judged_rows,
        lambda layer, variable, e, n, of: (
            f"Updates of {_whose(layer, variable, n, of)} are {number_text(e.value)} of the weights' "
            f"norm per step ({steps_text(view, e)}); around 1e-3 is healthy. The learning "
            "rate is likely too high: lower it (3–10× to start), or add warm-up or clipping."
        ),
    )
    # A ratio of exactly 0 is a layer that does not change at all: stagnant_layer.
    moving = {r: np.where(x > 0, x, np.nan) for r, x in series.items()}
    low = episodes_by_row(moving, t.update_ratio_low, above=False, sustain=t.sustain)
    why = _why_low(low, moving, judged_rows, view, t)
    if why is not None:
        low = {r: dataclasses.replace(e, severity="info", threshold=t.update_ratio_low.levels()[0][1]) for r, e in low.items()}

    def low_message(layer, variable, e, n, of):
        text = (
            f"Updates of {_whose(layer, variable, n, of)} are only {number_text(e.value)} of the "
            f"weights' norm per step ({steps_text(view, e)}); around 1e-3 is healthy. "
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

    findings += per_layer_findings(view, "update_ratio_low", low, judged_rows, low_message)
    return findings


def _why_low(low, ratios, judged_rows, view: RunView, t: Thresholds) -> Optional[str]:
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



def weight_norm_growth(view: RunView, t: Thresholds) -> List[Finding]:
    """A weight norm many times its value when first judged, and still rising."""
    trainable = trainable_rows(view)
    series = judged_series(view, "weight/l2", t, trainable)
    episodes = {}
    for r, w in series.items():
        known = np.flatnonzero(np.isfinite(w))
        if len(known) < 2 * t.sustain:
            continue
        start = np.median(w[known[: t.sustain]])
        rising = np.concatenate([[False], w[1:] >= w[:-1]])
        growth = np.where(rising, w / start, np.nan)
        e = find_episode(growth, t.weight_growth, above=True, sustain=t.sustain)
        if e is not None:
            episodes[r] = e
    judged_rows = rows_by_layer(view, [r for r in trainable if view.judged(t)[:, r].any()])
    return per_layer_findings(
        view, "weight_norm_growth", episodes, judged_rows,
        lambda layer, variable, e, n, of: (
            f"The weight norm of {_whose(layer, variable, n, of)} grew {number_text(e.value)}× since "
            f"logging began and keeps rising ({steps_text(view, e)}). Try: weight decay "
            "(AdamW, or a kernel_regularizer), a lower learning rate, normalisation after the "
            "layer, and a check that the loss cannot be lowered just by scaling weights up."
        ),
    )


def stagnant_layer(view: RunView, t: Thresholds) -> List[Finding]:
    """A whole layer whose update is exactly zero for `sustain` logged steps,
    with why (a gradient the optimizer does not apply, no gradient at all,
    or none logged)."""
    update = view.col("update/l2")
    if update is None:
        return []
    gradient = view.col("gradient/l2")
    trainable = trainable_rows(view)
    episodes = episodes_by_row(
        {r: update[:, r] for r in trainable}, Band(warning=0.0), above=False, sustain=t.sustain
    )
    by_layer = rows_by_layer(view, trainable)
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
            f"{e.last - e.first + 1} logged steps ({steps_text(view, e)}), " + why
        )

    return per_layer_findings(view, "stagnant_layer", episodes, by_layer, message)
