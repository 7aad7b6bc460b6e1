"""Images the demo draws itself: no download, so it runs offline.

Each image is a noisy grayscale picture of one shape (square outline, disc,
cross or triangle) at a random place and size; a small CNN learns them in a few
epochs, so its first-layer kernels turn into edge detectors.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

CLASSES = ("square", "disc", "cross", "triangle")


def _draw(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(size * 0.18, size * 0.32)
    cy, cx = rng.uniform(r + 1, size - r - 1, size=2)
    dy, dx = np.abs(yy - cy), np.abs(xx - cx)
    if kind == 0:  # square outline
        inside = np.maximum(dy, dx) <= r
        image = inside & (np.maximum(dy, dx) >= r - 2)
    elif kind == 1:  # disc
        image = np.hypot(yy - cy, xx - cx) <= r
    elif kind == 2:  # cross
        image = ((dy <= 1.5) & (dx <= r)) | ((dx <= 1.5) & (dy <= r))
    else:  # triangle pointing up
        top = cy - r
        image = (yy >= top) & (yy <= cy + r) & (dx <= (yy - top) * 0.5)
    return image.astype(np.float32)


def shapes(
    n: int, *, size: int = 28, noise: float = 0.15, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """`n` images of shape [size, size, 1] in [0, 1] and their integer labels.

    Example:

    >>> x, y = shapes(8, size=16)
    >>> x.shape, y.shape
    ((8, 16, 16, 1), (8,))
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=n)
    images = np.stack([_draw(int(k), size, rng) for k in labels])
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0)[..., None], labels.astype(np.int64)
