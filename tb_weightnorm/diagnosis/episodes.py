"""Episodes, the stretches of logged steps where a condition held, and the
findings made of them.

A sustained condition must hold for `Thresholds.sustain` logged steps in a
row, so one noisy step does not raise an alarm; a spike needs only one.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm.diagnosis.findings import Finding, severity_rank
from tb_weightnorm.diagnosis.run_view import RunView
from tb_weightnorm.diagnosis.thresholds import Band


@dataclasses.dataclass(frozen=True)
class Episode:
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


def find_episode(x: np.ndarray, band: Band, *, above: bool, sustain: int) -> Optional[Episode]:
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
    return Episode(
        first=mildest[0][0],
        last=mildest[-1][1],
        worst=worst,
        value=float(x[worst]),
        severity=severity,
        threshold=threshold,
        ongoing=mildest[-1][1] == len(x) - 1,
    )


def episodes_by_row(
    series: Mapping[int, np.ndarray], band: Band, *, above: bool, sustain: int
) -> Dict[int, Episode]:
    """The episode of each row's series that has one."""
    out = {}
    for row, x in series.items():
        episode = find_episode(x, band, above=above, sustain=sustain)
        if episode is not None:
            out[row] = episode
    return out



def number_text(value: float) -> str:
    """A value in a finding's message: 3 significant digits, `inf` or `nan`."""
    if not np.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def steps_text(view: RunView, episode: Episode) -> str:
    """The steps of `episode` in a finding's message: `steps 10–40, still ongoing`."""
    first, last = view.step(episode.first), view.step(episode.last)
    span = f"step {first}" if first == last else f"steps {first}–{last}"
    return span + (", still ongoing" if episode.ongoing and first != last else "")


def make_finding(view: RunView, rule: str, episode: Episode, layer: str, variable: str, message: str) -> Finding:
    """The finding of `rule` about `layer` (and `variable`) over `episode`'s steps."""
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


def per_layer_findings(
    view: RunView,
    rule: str,
    episodes: Mapping[int, Episode],
    judged_rows: Mapping[str, Sequence[int]],
    message: Callable[[str, str, Episode, int, int], str],
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
        findings.append(make_finding(view, rule, merged, layer, variable, text))
    return findings
