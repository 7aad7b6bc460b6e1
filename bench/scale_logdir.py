"""A large Weight Health log directory for the scale benchmarks, cached.

ONE run (`scale/train`) of a model with `variables` rows (about four per
layer: conv and dense kernels and biases, BatchNorm and LayerNorm scales,
attention projections, LSTM gates) logged `steps` times, every
`STEP_SPACING` training steps, as `WeightHealthCallback(every_n_steps=10)`
would: the norm table at each logged step, weight and gradient histograms
every `HISTOGRAM_EVERY` training steps, and kernel grids of a few conv layers.

The values are synthetic but shaped like training: weight norms drift, the
gradient decays with noise and one spike, updates follow a cosine schedule,
some ReLU kernels die slowly, and late in the run a few layers go NaN (one
gradient gets Inf), so the diagnosis has findings to report.

Everything is written through tb_weightnorm's own writers (`summary.py`), so
the logdir follows any change of the on-disk encoding; the cache key hashes
the writer-side sources, so such a change regenerates it.

    python -m bench.scale_logdir [--variables N] [--steps N] [FOLDER]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

RUN = "scale/train"
MODEL = "model"
# Training steps between logged steps (the callback's every_n_steps default).
STEP_SPACING = 10
HISTOGRAM_EVERY = 100  # training steps, the callback's default
HISTOGRAM_BINS = 32
KERNEL_GRIDS = 10  # images per conv layer drawn
MAX_CONV_GRIDS = 4  # conv layers with kernel grids

_REPO = pathlib.Path(__file__).resolve().parent.parent
# The sources that decide what the writers put on disk.
# What decides the bytes this script writes: a change to any of them makes a new cache entry.
_WRITER_SOURCES = ("schema.py", "wire", "graph", "writer/summary.py", "writer/kernel_grids.py")
_COMPLETE = "complete.json"


@dataclass(frozen=True)
class Row:
    """One row of the synthetic model's norm table."""

    path: str
    layer: str
    size: int  # elements
    kind: str  # kernel, bias, scale, shift
    has_units: bool


def _layer_rows(kind: str, index: int) -> List[Row]:
    """The rows of one Keras layer of `kind`, named like Keras names them."""
    name = f"{kind}_{index}" if index else kind
    prefix = f"{MODEL}/{name}"
    if kind == "conv2d":
        channels = 32 * (1 + index % 4)
        return [
            Row(f"{prefix}/kernel", name, 3 * 3 * channels * channels, "kernel", True),
            Row(f"{prefix}/bias", name, channels, "bias", False),
        ]
    if kind in ("batch_normalization", "layer_normalization"):
        channels = 32 * (1 + index % 4) if kind == "batch_normalization" else 256
        return [
            Row(f"{prefix}/gamma", name, channels, "scale", False),
            Row(f"{prefix}/beta", name, channels, "shift", False),
        ]
    if kind == "dense":
        return [
            Row(f"{prefix}/kernel", name, 256 * 256, "kernel", True),
            Row(f"{prefix}/bias", name, 256, "bias", False),
        ]
    if kind == "multi_head_attention":
        rows = []
        for part in ("query", "key", "value", "attention_output"):
            rows.append(Row(f"{prefix}/{part}/kernel", name, 256 * 256, "kernel", True))
            rows.append(Row(f"{prefix}/{part}/bias", name, 256, "bias", False))
        return rows
    if kind == "lstm":
        rows = []
        for variable, size, vkind, units in (
            ("kernel", 256 * 128, "kernel", True),
            ("recurrent_kernel", 128 * 128, "kernel", True),
            ("bias", 128, "bias", False),
        ):
            for gate in ("input", "forget", "cell", "output"):
                rows.append(Row(f"{prefix}/lstm_cell/{variable}[{gate}]", name, size, vkind, units))
        return rows
    raise ValueError(kind)


# One block of eight layers, 32 rows: four rows per layer on average.
_BLOCK = (
    "conv2d",
    "batch_normalization",
    "conv2d",
    "batch_normalization",
    "dense",
    "layer_normalization",
    "multi_head_attention",
    "lstm",
)


def model_rows(variables: int) -> List[Row]:
    """`variables` rows of a deep model, in model order."""
    rows: List[Row] = []
    counters: Dict[str, int] = {}
    while len(rows) < variables:
        for kind in _BLOCK:
            index = counters.get(kind, 0)
            counters[kind] = index + 1
            rows += _layer_rows(kind, index)
    return rows[:variables]


@dataclass(frozen=True)
class Plan:
    """Where the run goes wrong, by logged-step index and layer."""

    nan_layers: Tuple[str, ...]
    nan_from: int
    inf_layer: str
    inf_from: int
    spike_at: int
    dead_layers: Tuple[str, ...]


def _plan(rows: Sequence[Row], steps: int) -> Plan:
    layers = list(dict.fromkeys(r.layer for r in rows))
    kernel_layers = [r.layer for r in rows if r.has_units]
    pick = lambda seq, f: seq[min(len(seq) - 1, int(len(seq) * f))]  # noqa: E731
    return Plan(
        nan_layers=tuple(dict.fromkeys(pick(layers, f) for f in (0.3, 0.55, 0.8))),
        nan_from=int(steps * 0.9),
        inf_layer=pick(layers, 0.65),
        inf_from=int(steps * 0.95),
        spike_at=int(steps * 0.5),
        dead_layers=tuple(dict.fromkeys(pick(kernel_layers, f) for f in (0.2, 0.45))),
    )


class ValueModel:
    """The synthetic stats of every row, one logged step at a time (vectorised over rows)."""

    def __init__(self, rows: Sequence[Row], steps: int, seed: int = 0):
        self.rows = rows
        self.steps = steps
        self.plan = _plan(rows, steps)
        rng = np.random.default_rng(seed)
        self.rng = rng
        n = len(rows)
        self.size = np.array([r.size for r in rows], np.float64)
        kinds = np.array([r.kind for r in rows])
        self.kernel = kinds == "kernel"
        self.bias = kinds == "bias"
        self.scale = kinds == "scale"
        self.has_units = np.array([r.has_units for r in rows])
        # Glorot-like initial std of a kernel; biases and shifts start at 0, scales at 1.
        self.std0 = np.where(self.kernel, np.sqrt(1.0 / np.sqrt(self.size)) * rng.uniform(0.6, 1.4, n), 0.0)
        self.growth = rng.uniform(-0.2, 0.8, n)
        self.grad0 = 10 ** rng.uniform(-3.5, -1.0, n)
        self.grad_decay = rng.uniform(1.0, 4.0, n)
        self.drift = rng.normal(0, 0.002, n)
        layers = np.array([r.layer for r in rows])
        self.nan_rows = np.isin(layers, self.plan.nan_layers)
        self.inf_rows = (layers == self.plan.inf_layer) & self.kernel
        self.dead_rows = np.isin(layers, self.plan.dead_layers) & self.has_units
        self.walk = np.zeros(n)

    def _moments(self, l2: np.ndarray, centre: np.ndarray) -> Dict[str, np.ndarray]:
        """l1, linf, mean, std, min, max of tensors of l2 norm `l2` around `centre`."""
        root = np.sqrt(self.size)
        rms = l2 / root
        std = np.sqrt(np.maximum(rms**2 - centre**2, 0.0))
        spread = std * self.rng.uniform(3.0, 4.5, len(l2))
        low, high = centre - spread, centre + spread * self.rng.uniform(0.9, 1.1, len(l2))
        return {
            "l1": l2 * root * np.sqrt(2 / np.pi),
            "linf": np.maximum(np.abs(low), np.abs(high)),
            "mean": centre,
            "std": std,
            "min": low,
            "max": high,
        }

    def table(self, i: int, stats: Sequence[str]) -> np.ndarray:
        """The float32 table [rows + 1 (global), stats] at logged step index `i`."""
        t = i / max(self.steps - 1, 1)
        plan, n, rng = self.plan, len(self.rows), self.rng
        self.walk += rng.normal(0, 0.01, n)
        scale = 1.0 + self.growth * t + 0.05 * self.walk
        weight_l2 = np.where(
            self.kernel,
            self.std0 * np.sqrt(self.size) * scale,
            np.where(self.scale, np.sqrt(self.size) * (1 + 0.1 * self.walk), np.sqrt(self.size) * 0.02 * np.sqrt(t) * scale),
        )
        weight_centre = np.where(self.scale, 1.0 + 0.01 * self.walk, self.drift * t)
        grad_l2 = self.grad0 * (0.15 + np.exp(-self.grad_decay * t)) * rng.lognormal(0, 0.3, n)
        if i == plan.spike_at:
            grad_l2 = grad_l2 * 50
        learning_rate = 1e-3 * 0.5 * (1 + np.cos(np.pi * t)) + 1e-5
        # Adam-like: every element moves by about the learning rate.
        update_l2 = learning_rate * np.sqrt(self.size) * 0.3 * rng.lognormal(0, 0.2, n)
        dead = np.where(self.dead_rows, np.clip(t * 1.2 - 0.1, 0, 0.97), np.where(self.has_units, rng.uniform(0, 0.02, n), np.nan))
        dist = weight_l2 * np.sqrt(t) * 0.3
        weight = {"l2": weight_l2, **self._moments(weight_l2, weight_centre), "dist_init": dist}
        gradient = {"l2": grad_l2, **self._moments(grad_l2, np.zeros(n)), "dead_fraction": dead}
        for kind in (weight, gradient):
            kind["nan_count"] = np.zeros(n)
            kind["inf_count"] = np.zeros(n)
        if i >= plan.nan_from:
            broken = self.nan_rows
            share = min(1.0, 0.05 * (i - plan.nan_from + 1))
            for kind in (weight, gradient):
                kind["nan_count"] = np.where(broken, np.ceil(self.size * share), kind["nan_count"])
                for name in ("l1", "l2", "std", "dist_init"):
                    if name in kind:
                        kind[name] = np.where(broken, kind[name] * (1 - share), kind[name])
        if i >= plan.inf_from:
            gradient["inf_count"] = np.where(self.inf_rows, 3.0, gradient["inf_count"])
        ratio = np.where(weight_l2 > 0, update_l2 / np.where(weight_l2 > 0, weight_l2, 1), 0.0)
        update = {"l2": update_l2, "ratio": ratio}
        columns = {"weight": weight, "gradient": gradient, "update": update}
        out = np.full((n + 1, len(stats)), np.nan, np.float32)
        for k, stat in enumerate(stats):
            kind, _, name = stat.partition("/")
            out[:n, k] = columns[kind][name]
        # Keep exactly derivable columns exact, as the in-graph stats are.
        self._exact(out, stats)
        nonfinite = (weight["nan_count"] > 0).any() or (gradient["nan_count"] > 0).any()
        grad_global = np.inf if (gradient["inf_count"] > 0).any() else np.nan if nonfinite else np.sqrt(np.sum(grad_l2**2))
        global_values = {"weight/l2": np.sqrt(np.sum(weight_l2**2)), "gradient/l2": grad_global}
        for k, stat in enumerate(stats):
            if stat in global_values:
                out[n, k] = global_values[stat]
        return out

    @staticmethod
    def _exact(out: np.ndarray, stats: Sequence[str]) -> None:
        col = {s: k for k, s in enumerate(stats)}
        for kind in ("weight", "gradient"):
            names = [f"{kind}/linf", f"{kind}/min", f"{kind}/max"]
            if all(s in col for s in names):
                out[:, col[names[0]]] = np.maximum(np.abs(out[:, col[names[1]]]), np.abs(out[:, col[names[2]]]))
        if all(s in col for s in ("update/ratio", "update/l2", "weight/l2")):
            u, w = out[:, col["update/l2"]], out[:, col["weight/l2"]]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, col["update/ratio"]] = np.where(w > 0, u / w, np.float32(0)).astype(np.float32)

    def histograms(self, table: np.ndarray, stats: Sequence[str], bins: int) -> np.ndarray:
        """A [2 kinds, rows, bins + 5] histogram table consistent with `table`."""
        n = len(self.rows)
        col = {s: k for k, s in enumerate(stats)}
        # A bell over the buckets; counts of each row add up to its size.
        centres = (np.arange(bins) + 0.5) / bins
        bell = np.exp(-0.5 * ((centres - 0.5) / 0.18) ** 2)
        bell /= bell.sum()
        out = np.zeros((2, n, bins + 5), np.float32)
        for k, kind in enumerate(("weight", "gradient")):
            nan = np.nan_to_num(table[:n, col[f"{kind}/nan_count"]]) if f"{kind}/nan_count" in col else np.zeros(n)
            inf = np.nan_to_num(table[:n, col[f"{kind}/inf_count"]]) if f"{kind}/inf_count" in col else np.zeros(n)
            finite = self.size - nan - inf
            counts = np.floor(finite[:, None] * bell[None, :])
            counts[:, bins // 2] += finite - counts.sum(axis=1)
            out[k, :, 0] = table[:n, col[f"{kind}/min"]] if f"{kind}/min" in col else -1
            out[k, :, 1] = table[:n, col[f"{kind}/max"]] if f"{kind}/max" in col else 1
            out[k, :, 2 : 2 + bins] = counts
            out[k, :, bins + 2] = nan
            out[k, :, bins + 4] = inf
        return out


def _source_hash() -> str:
    digest = hashlib.sha1()
    package = _REPO / "tb_weightnorm"
    sources = []
    for name in _WRITER_SOURCES:
        path = package / name
        sources += sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts) if path.is_dir() else [path]
    sources.append(pathlib.Path(__file__).resolve())
    for path in sources:
        if path.is_file():
            digest.update(str(path.relative_to(_REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_key(variables: int, steps: int) -> str:
    """Names the cached logdir: its parameters and the writer's sources."""
    return f"v{variables}_s{steps}_{_source_hash()}"


def default_folder() -> str:
    return os.path.join(tempfile.gettempdir(), "tb_weightnorm_bench")


def build(variables: int = 1000, steps: int = 2000, folder: Optional[str] = None) -> Dict:
    """The logdir for `variables` × `steps`, generated unless cached.

    Returns a dict: `logdir`, `run`, `variables`, `steps`, `last_step`,
    `histogram_last_step`, `kernel_grids` ({variable: last step}),
    `layers` (model order), `nan_layers`, `generate_seconds` (0 when cached).
    """
    folder = folder or default_folder()
    logdir = os.path.join(folder, cache_key(variables, steps))
    done = os.path.join(logdir, _COMPLETE)
    if os.path.exists(done):
        with open(done) as f:
            return {**json.load(f), "generate_seconds": 0.0}
    # Logdirs of these sizes written by other versions of the writers are stale.
    for stale in pathlib.Path(folder).glob(f"v{variables}_s{steps}_*"):
        shutil.rmtree(stale, ignore_errors=True)
    started = time.perf_counter()
    info = _write(logdir, variables, steps)
    info["generate_seconds"] = round(time.perf_counter() - started, 2)
    with open(done, "w") as f:
        json.dump(info, f)
    return info


def _write(logdir: str, variables: int, steps: int) -> Dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tb_weightnorm.graph import model_variables, table
    from tb_weightnorm.writer import kernel_grids, summary

    rows = model_rows(variables)
    tracked = [model_variables.TrackedVariable(None, r.path, r.layer, True, None, r.has_units) for r in rows]
    spec = table.make_spec(tracked, gradients=True, updates=True, dist_init=True)
    names, hist_names = spec.names(), spec.histogram_names()
    values = ValueModel(rows, steps)
    convs = [r for r in rows if r.path.endswith("/kernel") and r.layer.startswith("conv2d")][:MAX_CONV_GRIDS]
    grid_every = max(1, steps // KERNEL_GRIDS)
    kernel_rng = np.random.default_rng(1)
    grid_last: Dict[str, int] = {}
    hist_last = None
    writer = tf.summary.create_file_writer(os.path.join(logdir, RUN), max_queue=100)
    with writer.as_default():
        for i in range(steps):
            step = 1 + i * STEP_SPACING
            tbl = values.table(i, names.stats)
            summary.write_norm_table(names, tbl, step)
            if (step - 1) % HISTOGRAM_EVERY == 0:
                hist = values.histograms(tbl, names.stats, HISTOGRAM_BINS)
                summary.write_histograms(hist_names, HISTOGRAM_BINS, hist, step)
                hist_last = step
            if i % grid_every == 0 or i == steps - 1:
                for c, conv in enumerate(convs):
                    channels = int(round((conv.size / 9) ** 0.5))
                    cin = 3 if c == 0 else channels
                    kernel = kernel_rng.normal(0, 0.1 * (1 + i / steps), (3, 3, cin, channels)).astype(np.float32)
                    grid = model_variables.ConvKernel(kernel, conv.path, conv.layer, "Conv2D", c == 0)
                    kernel_grids.write_kernel_grid(grid, step)
                    grid_last[conv.path] = step
    writer.close()
    return {
        "logdir": logdir,
        "run": RUN,
        "variables": variables,
        "steps": steps,
        "last_step": 1 + (steps - 1) * STEP_SPACING,
        "histogram_last_step": hist_last,
        "kernel_grids": grid_last,
        "layers": list(dict.fromkeys(r.layer for r in rows)),
        "nan_layers": list(values.plan.nan_layers),
        "stats": list(names.stats),
        "logdir_bytes": sum(p.stat().st_size for p in pathlib.Path(logdir).rglob("*") if p.is_file()),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=None, help="cache folder (default: a folder in the temp dir)")
    parser.add_argument("--variables", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    info = build(args.variables, args.steps, args.folder)
    print(json.dumps({k: v for k, v in info.items() if k not in ("layers", "stats")}, indent=1))


if __name__ == "__main__":
    if not __package__:
        sys.path.insert(0, str(_REPO))
    main()
