"""One RGB image of a convolution kernel's filters, for TensorBoard.

Pure numpy: no TensorFlow, no I/O, so it runs wherever the kernel's values
are (a callback, the plugin's backend, a notebook). Keras' own TensorBoard
callback can only draw kernels whose last axis is 1, 3 or 4; this draws any.

Layout. A *filter* is one output unit; it has one 2-D *slice* per input channel
(Conv1D: a 1 x k strip). Each filter is one row of its slices side by side
(1-px separators); the rows are tiled into as many columns as keep the image
roughly square (2-px separators between filters, reading order left to right,
then top to bottom). Choices where the kernel does not say:

* Conv3D: a filter's slices are the kd depth slices of each input channel,
  channel-major (channel 0's depths 0..kd-1, then channel 1's, ...), each a
  kh x kw patch.
* At most 16 slices per filter are drawn: the first 16 input channels (Conv3D:
  as many *whole* input channels as fit in 16 patches; a channel deeper than
  16 shows its first 16 depth slices). A first layer has few inputs and a
  deep layer's hundreds of slices would make one filter a line of noise.
* DepthwiseConv2D and SeparableConv2D (its depthwise kernel): every
  (input channel, multiplier) pair is one filter of one slice, in the order of
  the layer's outputs (channel-major). Whatever kernel is passed is drawn as
  depthwise: the 1x1 pointwise kernel is not spatial, so the caller passes
  the depthwise one.
* Conv2DTranspose kernels are [kh, kw, out, in]: filters along axis 2.

Colours. Diverging mode (the default): blue for negative, white for 0, red for
positive, all filters on ONE scale (the largest finite |w| drawn) so a weak
filter looks pale next to a strong one. RGB mode (`rgb_input=True` and 3 input
channels, e.g. a first layer on RGB images): each filter's 3 input channels
are its R, G, B, mapped v -> 0.5 + 0.5 * v / scale with the same shared scale.
Non-finite weights never enter the scale and are drawn in marker colours: NaN
black (0, 0, 0), +-Inf yellow (255, 255, 0); neither occurs in the diverging
colormap (in RGB mode every colour is a weight's colour, so markers there are
only as distinct as the weights around them allow). In RGB mode a pixel is
black if any of its 3 channels is NaN, else yellow if any is infinite.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import numpy as np

CONV_KINDS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")

_LAYOUTS = {
    "Conv1D": (3, "[k, in, out]"),
    "Conv2D": (4, "[kh, kw, in, out]"),
    "Conv3D": (5, "[kd, kh, kw, in, out]"),
    "DepthwiseConv2D": (4, "[kh, kw, in, depth_multiplier]"),
    "SeparableConv2D": (4, "[kh, kw, in, depth_multiplier] (its depthwise kernel)"),
    "Conv2DTranspose": (4, "[kh, kw, out, in]"),
}

_MAX_SLICES = 16
_MAX_SIDE = 2048  # TensorBoard shows larger images scaled down anyway; PNGs stay small.
_MIN_PATCH_PX = 12  # an automatic cell makes a patch's longer side at least this...
_MIN_STRIP_PX = 6  # ...and its shorter side at least this (a Conv1D strip stays visible).
_PATCH_GAP = 1
_FILTER_GAP = 2

# Diverging colormap anchors (t = w / scale in [-1, 1]); a red-white-blue ramp
# with darker ends so |w| near the scale stands out from |w| half of it.
_ANCHOR_T = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
_ANCHOR_RGB = np.array(
    [
        [49, 54, 149],
        [116, 173, 209],
        [255, 255, 255],
        [244, 109, 67],
        [165, 0, 38],
    ],
    dtype=np.float64,
)
_NAN_RGB = (0, 0, 0)
_INF_RGB = (255, 255, 0)
# Separators: a grey that is not a weight colour. In RGB mode mid grey (128) is
# the colour of a zero weight, so dead filters would melt into the grid; white
# needs all 3 channels at the grid's largest weight at once, which is rare.
_SEPARATOR = {"diverging": (200, 200, 200), "rgb": (255, 255, 255)}


@dataclasses.dataclass(frozen=True)
class KernelGrid:
    """A kernel drawn as one image.

    Attributes:
        image: uint8 [height, width, 3].
        filters_shown: how many filters are drawn (the first ones).
        filters_total: how many filters the kernel has.
        mode: "rgb" or "diverging".
        scale: the |w| drawn at full colour, shared by the whole grid; 0 if no
            drawn weight is finite and non-zero.
    """

    image: np.ndarray
    filters_shown: int
    filters_total: int
    mode: str
    scale: float


def kernel_grid(
    kernel: np.ndarray,
    *,
    kind: str,
    max_filters: int = 64,
    rgb_input: bool = False,
    cell: int = 0,
) -> KernelGrid:
    """Draws the first filters of a convolution kernel as one RGB grid.

    Args:
        kernel: the kernel's values in the Keras channels_last layout of `kind`
            (any real dtype, including float16 and bfloat16; anything
            `np.asarray` accepts). NaN and Inf are drawn in marker colours.
        kind: one of `CONV_KINDS`, the layer's class name.
        max_filters: draw at most this many filters (the first ones); at least 1.
        rgb_input: the layer reads RGB images; if the filters have exactly 3
            input channels they are drawn in colour. Ignored for depthwise
            kinds, whose filters each see one channel.
        cell: pixels per kernel element; 0 chooses so a patch is readable
            (a 3x3 patch becomes 12x12 px). Reduced if the image would exceed
            2048 px on its longer side.

    Returns:
        A `KernelGrid`. If even 1 px per element would exceed 2048 px, fewer
        slices, then fewer filters (see `filters_shown`) are drawn.

    Example:

    >>> k = np.zeros([3, 3, 5, 7], np.float32)
    >>> k[1, 1, 0, 0] = 1.0
    >>> grid = kernel_grid(k, kind="Conv2D")
    >>> grid.image.shape, grid.filters_shown, grid.mode, grid.scale
    ((96, 64, 3), 7, 'diverging', 1.0)
    """
    if kind not in _LAYOUTS:
        raise ValueError(f"Unknown kind {kind!r}; expected one of {', '.join(CONV_KINDS)}.")
    if int(max_filters) < 1:
        raise ValueError(f"max_filters must be at least 1; got {max_filters}.")
    if int(cell) < 0:
        raise ValueError(f"cell must be 0 (automatic) or a positive number of pixels; got {cell}.")
    kernel = np.asarray(kernel)
    rank, layout = _LAYOUTS[kind]
    if kernel.ndim != rank:
        raise ValueError(f"{kind} kernels have rank {rank} {layout}; got shape {tuple(kernel.shape)}.")
    if kernel.size == 0:
        raise ValueError(f"{kind} kernel {layout} has no elements; got shape {tuple(kernel.shape)}.")
    if kernel.dtype.kind in "USMmc":
        # Checked by kind, not np.number: ml_dtypes' bfloat16 is not a numpy
        # "number" but converts fine; complex would silently lose its imaginary part.
        raise ValueError(f"kernel must hold real numbers; got dtype {kernel.dtype}.")

    five, total = _canonical(kernel, kind, int(max_filters))
    n_in = five.shape[1]
    colour_input = rgb_input and n_in == 3 and kind not in ("DepthwiseConv2D", "SeparableConv2D")
    mode = "rgb" if colour_input else "diverging"
    if mode == "rgb":
        # [F, 3, depth, ph, pw] -> [F, depth, ph, pw, 3]: one colour patch per depth slice.
        patches = np.moveaxis(five, 1, -1)[:, :_MAX_SLICES]
    else:
        depth = five.shape[2]
        channels = max(1, min(n_in, _MAX_SLICES // depth))
        f, _, _, ph, pw = five.shape
        patches = five[:, :channels].reshape(f, channels * depth, ph, pw)[:, :_MAX_SLICES]

    n_filters, n_slices, ph, pw = patches.shape[:4]
    cell_px, n_filters, n_slices, ph, pw, cols = _fit(n_filters, n_slices, ph, pw, int(cell))
    values = np.asarray(patches[:n_filters, :n_slices, :ph, :pw], dtype=np.float64)

    finite = np.isfinite(values)
    scale = float(np.max(np.abs(values[finite]))) if finite.any() else 0.0
    if mode == "rgb":
        colours = _rgb(values, scale)
    else:
        colours = _diverging(values, scale)
    image = _assemble(colours, cell_px, cols, _SEPARATOR[mode])
    return KernelGrid(image=image, filters_shown=n_filters, filters_total=total, mode=mode, scale=scale)


def _canonical(kernel: np.ndarray, kind: str, max_filters: int) -> Tuple[np.ndarray, int]:
    """The first `max_filters` filters as [F, in, depth, ph, pw] (a view where
    possible, so a huge kernel is never copied whole), and the filter count."""
    if kind == "Conv1D":
        five = kernel.transpose(2, 1, 0)[:, :, None, None, :]
    elif kind == "Conv2D":
        five = kernel.transpose(3, 2, 0, 1)[:, :, None]
    elif kind == "Conv2DTranspose":
        five = kernel.transpose(2, 3, 0, 1)[:, :, None]
    elif kind == "Conv3D":
        five = kernel.transpose(4, 3, 0, 1, 2)
    else:  # DepthwiseConv2D, SeparableConv2D: output c * mult + m is (channel c, multiplier m).
        kh, kw, n_in, mult = kernel.shape
        total = n_in * mult
        channels = min(n_in, -(-max_filters // mult))
        flat = kernel[:, :, :channels].transpose(2, 3, 0, 1).reshape(channels * mult, kh, kw)
        return flat[:max_filters, None, None], total
    return five[:max_filters], five.shape[0]


def _layout(n_filters: int, filter_h: int, filter_w: int) -> Tuple[int, int, int]:
    """(columns, height, width) of the tiling with the shortest longer side
    (ties: the squarer, then the fewer columns)."""
    cols = np.arange(1, n_filters + 1)
    rows = -(-n_filters // cols)
    width = cols * filter_w + (cols - 1) * _FILTER_GAP
    height = rows * filter_h + (rows - 1) * _FILTER_GAP
    order = np.lexsort((cols, np.abs(width - height), np.maximum(width, height)))
    best = int(order[0])
    return int(cols[best]), int(height[best]), int(width[best])


def _filter_size(n_slices: int, ph: int, pw: int, cell: int) -> Tuple[int, int]:
    return ph * cell, n_slices * pw * cell + (n_slices - 1) * _PATCH_GAP


def _fit(n_filters: int, n_slices: int, ph: int, pw: int, cell: int):
    """(cell, filters, slices, ph, pw, columns) that keep the image within
    _MAX_SIDE: first a smaller cell, then (at 1 px) fewer slices, fewer filters,
    and, for an absurdly long kernel, only its first _MAX_SIDE elements."""
    if cell == 0:
        cell = max(math.ceil(_MIN_PATCH_PX / max(ph, pw)), math.ceil(_MIN_STRIP_PX / min(ph, pw)))
    for c in range(cell, 0, -1):
        cols, height, width = _layout(n_filters, *_filter_size(n_slices, ph, pw, c))
        if max(height, width) <= _MAX_SIDE:
            return c, n_filters, n_slices, ph, pw, cols
    ph, pw = min(ph, _MAX_SIDE), min(pw, _MAX_SIDE)
    n_slices = max(1, min(n_slices, (_MAX_SIDE + _PATCH_GAP) // (pw + _PATCH_GAP)))
    filter_h, filter_w = _filter_size(n_slices, ph, pw, 1)
    fit_cols = (_MAX_SIDE + _FILTER_GAP) // (filter_w + _FILTER_GAP)
    fit_rows = (_MAX_SIDE + _FILTER_GAP) // (filter_h + _FILTER_GAP)
    n_filters = min(n_filters, fit_cols * fit_rows)
    cols, _, _ = _layout(n_filters, filter_h, filter_w)
    return 1, n_filters, n_slices, ph, pw, cols


def _diverging(values: np.ndarray, scale: float) -> np.ndarray:
    """float [...] -> uint8 [..., 3] on the blue-white-red ramp."""
    finite = np.isfinite(values)
    t = np.where(finite, values, 0.0)
    if scale > 0:
        t = np.clip(t / scale, -1.0, 1.0)
    rgb = np.stack([np.interp(t, _ANCHOR_T, _ANCHOR_RGB[:, i]) for i in range(3)], axis=-1)
    rgb = np.round(rgb).astype(np.uint8)
    rgb[np.isnan(values)] = _NAN_RGB
    rgb[np.isinf(values)] = _INF_RGB
    return rgb


def _rgb(values: np.ndarray, scale: float) -> np.ndarray:
    """float [..., 3] (R, G, B weights) -> uint8 [..., 3], 0 at mid grey."""
    v = np.where(np.isfinite(values), values, 0.0)
    level = 0.5 + 0.5 * v / scale if scale > 0 else np.full_like(v, 0.5)
    rgb = np.round(np.clip(level, 0.0, 1.0) * 255).astype(np.uint8)
    rgb[np.isinf(values).any(axis=-1)] = _INF_RGB
    rgb[np.isnan(values).any(axis=-1)] = _NAN_RGB
    return rgb


def _assemble(colours: np.ndarray, cell: int, cols: int, separator) -> np.ndarray:
    """uint8 [F, S, ph, pw, 3] -> the tiled image, built with array reshapes
    (no Python loop over patches: a 1x1 depthwise kernel can have thousands)."""
    n_filters, n_slices, ph, pw, _ = colours.shape
    sep = np.asarray(separator, np.uint8)
    patches = colours.repeat(cell, axis=2).repeat(cell, axis=3)
    h, w = ph * cell, pw * cell
    # Each patch padded on the right by its separator, side by side, last pad cut.
    padded = np.empty([n_filters, n_slices, h, w + _PATCH_GAP, 3], np.uint8)
    padded[...] = sep
    padded[:, :, :, :w] = patches
    rows_of_slices = padded.transpose(0, 2, 1, 3, 4).reshape(n_filters, h, -1, 3)
    rows_of_slices = rows_of_slices[:, :, : n_slices * (w + _PATCH_GAP) - _PATCH_GAP]
    filter_h, filter_w = rows_of_slices.shape[1:3]
    # Each filter padded right and below; the grid's empty cells stay separator.
    n_rows = -(-n_filters // cols)
    tiles = np.empty([n_rows * cols, filter_h + _FILTER_GAP, filter_w + _FILTER_GAP, 3], np.uint8)
    tiles[...] = sep
    tiles[:n_filters, :filter_h, :filter_w] = rows_of_slices
    tile_h, tile_w = filter_h + _FILTER_GAP, filter_w + _FILTER_GAP
    image = tiles.reshape(n_rows, cols, tile_h, tile_w, 3)
    image = image.transpose(0, 2, 1, 3, 4).reshape(n_rows * tile_h, cols * tile_w, 3)
    return np.ascontiguousarray(image[:-_FILTER_GAP, :-_FILTER_GAP])
