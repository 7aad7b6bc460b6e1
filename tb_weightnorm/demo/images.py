"""Images the demo draws itself: no download, so it runs offline.

Each image is a noisy grayscale picture of one shape (circle, square,
triangle, cross or line) drawn with a pen 1.5 to 3 pixels wide, turned by a
random angle, at a random place and size. Every shape but the circle is made of
straight strokes, so telling them apart takes edges at several orientations: a
small CNN learns them in a few epochs, and its first-layer kernels turn into
edge detectors.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "line")

# The corners of each stroked shape on the unit circle (angles in turns),
# joined in pairs into strokes. The circle has none: it is drawn by its radius.
_STROKES = {
    "square": [(0.125, 0.375), (0.375, 0.625), (0.625, 0.875), (0.875, 0.125)],
    "triangle": [(0.25, 0.25 + 1 / 3), (0.25 + 1 / 3, 0.25 + 2 / 3), (0.25 + 2 / 3, 0.25)],
    "cross": [(0.0, 0.5), (0.25, 0.75)],
    "line": [(0.0, 0.5)],
}
_MOST_STROKES = max(len(s) for s in _STROKES.values())


def _segment_distance(yy, xx, a, b):
    """Distance of every pixel to the segments a-b ([n, 2] end points, y then x)."""
    ay, ax = a[:, 0, None, None], a[:, 1, None, None]
    dy, dx = b[:, 0, None, None] - ay, b[:, 1, None, None] - ax
    length2 = np.maximum(dy * dy + dx * dx, 1e-6)
    t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / length2, 0.0, 1.0)
    return np.hypot(yy - ay - t * dy, xx - ax - t * dx)


def shapes(
    n: int, *, size: int = 28, noise: float = 0.2, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """`n` images of shape [size, size, 1] in [0, 1] and their integer labels
    (indices into `CLASSES`), drawn with a generator seeded by `seed`.

    Example:

    >>> x, y = shapes(8, size=16)
    >>> x.shape, y.shape
    ((8, 16, 16, 1), (8,))
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=n)
    radius = rng.uniform(0.2, 0.4, size=n) * size
    # Inside the image; below ~20 pixels a shape may touch its edge.
    margin = np.minimum(radius + 2.0, size / 2)
    center = rng.uniform(margin[:, None], size - margin[:, None], size=(n, 2))
    turn = rng.uniform(0.0, 1.0, size=n)
    pen = rng.uniform(1.5, 3.0, size=n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)

    # Every image's distance to its own shape: the circle's from its radius, the
    # others' from their nearest stroke (a shape with fewer strokes repeats its
    # first one, so that all images are drawn together).
    distance = np.abs(np.hypot(yy - center[:, 0, None, None], xx - center[:, 1, None, None]) - radius[:, None, None])
    strokes = np.zeros((n, _MOST_STROKES, 2), np.float64)
    stroked = labels != CLASSES.index("circle")
    for k, name in enumerate(CLASSES):
        if name in _STROKES:
            corners = _STROKES[name]
            strokes[labels == k] = [corners[i % len(corners)] for i in range(_MOST_STROKES)]
    nearest = np.full((n, size, size), np.inf)
    for s in range(_MOST_STROKES):
        ends = [
            center + radius[:, None] * np.stack(
                [-np.cos(2 * np.pi * (strokes[:, s, e] + turn)), np.sin(2 * np.pi * (strokes[:, s, e] + turn))], axis=1
            )
            for e in (0, 1)
        ]
        nearest = np.minimum(nearest, _segment_distance(yy, xx, *ends))
    distance = np.where(stroked[:, None, None], nearest, distance)

    # Anti-aliased strokes: full ink within half a pen width, fading over one pixel.
    images = np.clip(pen[:, None, None] / 2 + 0.5 - distance, 0.0, 1.0)
    images += rng.normal(0.0, noise, size=images.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32)[..., None], labels.astype(np.int64)
