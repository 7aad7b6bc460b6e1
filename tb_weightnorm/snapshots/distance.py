"""How far a model's weights moved between two snapshots: ‖W_to − W_from‖ per
variable and per layer, and relative to ‖W_from‖.

Pure numpy, no I/O. As everywhere in tb_weightnorm, the norms are taken over
the finite values (here: the elements finite in both snapshots), and the
elements that are NaN or infinite in either are counted apart, so a NaN does
not hide how far the rest moved.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Distance:
    """How far one variable, or a layer's variables together, moved.

    Attributes:
        name: the variable path, or the layer name.
        layer: the layer.
        distance: ‖W_to − W_from‖ (l2, over the elements finite in both).
        norm_from: ‖W_from‖ over the same elements.
        norm_to: ‖W_to‖ over the same elements.
        nonfinite: elements that are NaN or infinite in either snapshot.
        size: elements compared.
    """

    name: str
    layer: str
    distance: float
    norm_from: float
    norm_to: float
    nonfinite: int
    size: int

    @property
    def relative(self) -> float:
        """distance / norm_from: infinite when the weights moved away from all
        zeros, NaN when they stayed at all zeros."""
        if self.norm_from > 0:
            return self.distance / self.norm_from
        return math.inf if self.distance > 0 else math.nan


def variable_distance(name: str, layer: str, w_from: np.ndarray, w_to: np.ndarray) -> Distance:
    """The distance between two values of one variable (same shape), in float64."""
    a = np.asarray(w_from, dtype=np.float64).ravel()
    b = np.asarray(w_to, dtype=np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    nonfinite = int(finite.size - np.count_nonzero(finite))
    if nonfinite:
        a, b = a[finite], b[finite]
    return Distance(
        name=name,
        layer=layer,
        distance=float(np.linalg.norm(b - a)),
        norm_from=float(np.linalg.norm(a)),
        norm_to=float(np.linalg.norm(b)),
        nonfinite=nonfinite,
        size=int(a.size),
    )


def _combined(name: str, parts: Sequence[Distance]) -> Distance:
    """The layer's distance: its variables' values taken as one vector."""
    return Distance(
        name=name,
        layer=name,
        distance=math.sqrt(sum(p.distance**2 for p in parts)),
        norm_from=math.sqrt(sum(p.norm_from**2 for p in parts)),
        norm_to=math.sqrt(sum(p.norm_to**2 for p in parts)),
        nonfinite=sum(p.nonfinite for p in parts),
        size=sum(p.size for p in parts),
    )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The distances between two snapshots of a run.

    Attributes:
        layers: (layer distance, its variables' distances) in model order.
        unmatched: (variable, why it was not compared): held by one snapshot
            only, or with another shape.
    """

    layers: Tuple[Tuple[Distance, Tuple[Distance, ...]], ...]
    unmatched: Tuple[Tuple[str, str], ...]


def compare(
    weights_from: Mapping[str, np.ndarray],
    weights_to: Mapping[str, np.ndarray],
    layer_of: Mapping[str, str],
    *,
    names: Tuple[str, str] = ("from", "to"),
) -> Comparison:
    """Distances of every variable the two snapshots share, grouped by layer.

    Args:
        weights_from, weights_to: variable path -> values, in model order.
        layer_of: variable path -> layer, for every variable of either.
        names: how the unmatched reasons call the two snapshots.

    Example:

    >>> c = compare({"d/kernel": np.ones(4)}, {"d/kernel": np.zeros(4)}, {"d/kernel": "d"})
    >>> c.layers[0][0].distance, c.layers[0][0].relative
    (2.0, 1.0)
    """
    by_layer: Dict[str, List[Distance]] = {}
    unmatched: List[Tuple[str, str]] = []
    for name, a in weights_from.items():
        b = weights_to.get(name)
        if b is None:
            unmatched.append((name, f"only in {names[0]}"))
            continue
        if np.shape(a) != np.shape(b):
            unmatched.append((name, f"shape {list(np.shape(a))} in {names[0]}, {list(np.shape(b))} in {names[1]}"))
            continue
        layer = layer_of[name]
        by_layer.setdefault(layer, []).append(variable_distance(name, layer, a, b))
    unmatched += [(name, f"only in {names[1]}") for name in weights_to if name not in weights_from]
    return Comparison(
        layers=tuple((_combined(layer, parts), tuple(parts)) for layer, parts in by_layer.items()),
        unmatched=tuple(unmatched),
    )


def total(comparison: Comparison) -> Distance:
    """The whole model's distance: every compared variable as one vector."""
    return _combined("(model)", [layer for layer, _ in comparison.layers])

