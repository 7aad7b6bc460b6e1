"""Reads the conv kernel grid images back through a TensorBoard data provider.

A kernel grid time series (tag `weight_health/kernels/<variable>`) is a
BLOB_SEQUENCE of [width, height, PNG, JSON info] per logged step; its
metadata names the layer, the variable, the colour mode and the filter count.
Blobs are read with the data provider's `read_blob`, so this works under both
of TensorBoard's loaders; a step whose blobs are unreadable is skipped with a
warning.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

from tensorboard import errors
from tensorboard.data import provider as provider_lib

from tb_weightnorm.read import norm_tables
from tb_weightnorm.wire import metadata

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BLOBS = ("width", "height", "png", "info")
# The widest or tallest grid image believed: far above what kernel_grid draws
# (64 filters by default), far below what would stretch the tab's layout.
MAX_SIDE = 1 << 14


@dataclasses.dataclass(frozen=True)
class KernelGridInfo:
    """What a kernel grid time series draws (from its metadata)."""

    layer: str
    variable: str
    mode: str
    filters_total: int


def kernel_grid_info(content: bytes) -> KernelGridInfo:
    """The kernel grid named by a time series' plugin data.

    Raises:
        metadata.UnreadableMetadata: if the data is unreadable or not a kernel grid.
    """
    data = metadata.parse_plugin_data(content)
    if data.WhichOneof("content") != "kernel_grid":
        raise metadata.UnreadableMetadata("plugin data is not a kernel grid")
    grid = data.kernel_grid
    if not grid.variable:
        raise metadata.UnreadableMetadata("kernel grid without a variable name")
    return KernelGridInfo(grid.layer, grid.variable, grid.mode, grid.filters_total)


def list_kernel_grids(
    data_provider, ctx, experiment_id: str, runs: Optional[Sequence[str]] = None
) -> Dict[str, Dict[str, provider_lib.BlobSequenceTimeSeries]]:
    """The kernel grid time series of each run (of the given runs, if any), by tag."""
    run_tag_filter = provider_lib.RunTagFilter(runs=list(runs)) if runs is not None else None
    listing = data_provider.list_blob_sequences(
        ctx,
        experiment_id=experiment_id,
        plugin_name=metadata.PLUGIN_NAME,
        run_tag_filter=run_tag_filter,
    )
    grids = {r: norm_tables.with_prefix(tags, metadata.KERNEL_GRID_TAG_PREFIX) for r, tags in listing.items()}
    return {r: tags for r, tags in grids.items() if tags}


def grids_by_variable(
    run: str, series: Mapping[str, provider_lib.BlobSequenceTimeSeries]
) -> Dict[str, Tuple[str, KernelGridInfo]]:
    """variable -> (tag, info) of a run's kernel grid series, in tag order;
    unreadable ones are skipped with a warning."""
    named = norm_tables.readable_names(run, series, kernel_grid_info)
    return {info.variable: (tag, info) for tag, info in sorted(named.items())}


@dataclasses.dataclass(frozen=True)
class KernelGridImage:
    """One logged grid image: its size, what the JSON beside it says, and the
    data provider's key of its PNG."""

    step: int
    wall_time: float
    width: int
    height: int
    scale: Optional[float]
    filters_shown: Optional[int]
    png_key: str


@dataclasses.dataclass(frozen=True)
class KernelGridHistory:
    """Every kept grid image of one conv variable of one run, by step."""

    run: str
    info: KernelGridInfo
    images: Tuple[KernelGridImage, ...]

    def at(self, step: int) -> Optional[KernelGridImage]:
        return next((image for image in self.images if image.step == step), None)


def read_kernel_grids(
    data_provider, ctx, experiment_id: str, run: str, tag: str, info: KernelGridInfo
) -> KernelGridHistory:
    """The grid images of time series `tag` of `run`, without their PNGs (those
    are read one at a time by `read_png`)."""
    try:
        data = data_provider.read_blob_sequences(
            ctx,
            experiment_id=experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=norm_tables.ALL_STEPS,
            run_tag_filter=provider_lib.RunTagFilter(runs=[run], tags=[tag]),
        ).get(run, {})
    except (ValueError, TypeError) as exc:  # a step the data provider cannot decode
        norm_tables.warn_once(
            ("blobs", run, tag),
            "tb_weightnorm: skipping %s of run %r: TensorBoard's data provider cannot decode it (%s: %s)",
            tag,
            run,
            type(exc).__name__,
            exc,
        )
        data = {}
    images, skipped = [], []
    for datum in data.get(tag, []):
        try:
            images.append(_image(data_provider, ctx, datum))
        except (errors.PublicError, ValueError, TypeError) as exc:
            # ValueError covers bad numbers, bad UTF-8 and bad JSON alike.
            skipped.append((int(datum.step), str(exc)))
    norm_tables.warn_skipped_steps(run, tag, skipped, len(images) + len(skipped))
    images.sort(key=lambda image: image.step)
    return KernelGridHistory(run=run, info=info, images=tuple(images))


def _image(data_provider, ctx, datum: provider_lib.BlobSequenceDatum) -> KernelGridImage:
    if len(datum.values) != len(_BLOBS):
        raise ValueError(f"{len(datum.values)} blobs, expected {len(_BLOBS)} ({', '.join(_BLOBS)})")
    width, height, png, info = datum.values

    def text(ref) -> str:
        return data_provider.read_blob(ctx, blob_key=ref.blob_key).decode("utf-8")

    size = int(text(width)), int(text(height))
    if min(size) < 1 or max(size) > MAX_SIDE:
        raise ValueError(f"image size {size[0]} x {size[1]} (each side must be 1 to {MAX_SIDE} pixels)")
    extra = json.loads(text(info))
    if not isinstance(extra, dict):
        raise ValueError(f"image info is not a JSON object: {extra!r}")
    scale, shown = extra.get("scale"), extra.get("filters_shown")
    return KernelGridImage(
        step=int(datum.step),
        wall_time=norm_tables.wall_time(datum.wall_time),
        width=size[0],
        height=size[1],
        scale=float(scale) if isinstance(scale, (int, float)) and math.isfinite(scale) else None,
        filters_shown=int(shown) if isinstance(shown, int) else None,
        png_key=png.blob_key,
    )


def read_png(data_provider, ctx, image: KernelGridImage) -> Optional[bytes]:
    """The PNG bytes of a grid image; None if the blob is not a PNG."""
    data = data_provider.read_blob(ctx, blob_key=image.png_key)
    return data if data.startswith(PNG_SIGNATURE) else None
