"""Bytes on disk per variable per logged step, for the norm table, the
histograms and the kernel grids: each bench model trained briefly with
WeightHealthCallback logging tables and histograms every step (the tables
hold what the defaults log: every stat), and the event files taken apart by
what each record holds.

A record's size is counted whole: the event around the summary, its tag and
the 16 bytes of framing the event file adds. The first record of a series
also carries the names of its rows and columns, once per run and writer: it
is reported apart, and the per-step figure is that of the records after it.

Run: python bench/size.py [--quick]
"""

from __future__ import annotations

import collections
import glob
import os
import sys
import tempfile
from typing import Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tensorboard.backend.event_processing import event_file_loader  # noqa: E402
from tensorboard.compat.proto import event_pb2  # noqa: E402

import tb_weightnorm  # noqa: E402
from bench import common, models  # noqa: E402
from tb_weightnorm.wire import metadata  # noqa: E402
from tb_weightnorm.graph import model_variables

_FRAMING = 16  # length (8) and two CRCs (4 + 4) around each record
_KINDS = {
    metadata.NORM_TABLE_TAG_PREFIX: "norm table",
    metadata.HISTOGRAM_TAG_PREFIX: "histograms",
    metadata.KERNEL_GRID_TAG_PREFIX: "kernel grids",
}
SETTINGS = {
    "every step": {"every_n_steps": 1, "histogram_every_n_steps": 1, "kernel_grid_every_n_epochs": 1},
}


def bytes_by_kind(run_dir: str) -> Dict[str, Dict[str, int]]:
    """{kind: {"first": bytes of the first records of its series, "series":
    how many, "bytes": total bytes of the later records, "events": how many}}."""
    out: Dict[str, Dict[str, int]] = collections.defaultdict(lambda: {"first": 0, "series": 0, "bytes": 0, "events": 0})
    seen = set()
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for record in event_file_loader.RawEventFileLoader(path).Load():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                kind = next((k for prefix, k in _KINDS.items() if value.tag.startswith(prefix)), None)
                if not kind:
                    continue
                # One value per event: the record is the value's cost.
                if value.tag in seen:
                    out[kind]["bytes"] += len(record) + _FRAMING
                    out[kind]["events"] += 1
                else:
                    seen.add(value.tag)
                    out[kind]["first"] += len(record) + _FRAMING
                    out[kind]["series"] += 1
    return dict(out)


def measure(key: str, setting: str, steps: int, epochs: int, workdir: str) -> dict:
    model = models.compiled(key)
    x, y = models.data(key, steps)
    log_dir = tempfile.mkdtemp(prefix=f"size_{key}_", dir=workdir)
    callback = tb_weightnorm.WeightHealthCallback(log_dir, report=None, **SETTINGS[setting])
    model.fit(x, y, batch_size=models.BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[callback])
    variables = len(model.trainable_variables)
    convs = len(model_variables.conv_kernels(model))
    found = bytes_by_kind(os.path.join(log_dir, "train"))
    per_variable = {}
    for kind, totals in found.items():
        # Kernel grids are one event per conv kernel per logged step; tables
        # are one event per logged step for all variables.
        divisor = totals["events"] if kind == "kernel grids" else totals["events"] * variables
        per_variable[kind] = totals["bytes"] / max(divisor, 1)
    return {"variables": variables, "conv_kernels": convs, "bytes_per_variable_step": per_variable, "raw": found}


def run(quick: bool = False, workdir: Optional[str] = None) -> dict:
    keys = ["small_cnn"] if quick else list(models.MODELS)
    workdir = workdir or tempfile.mkdtemp(prefix="bench_size_")
    result = {"machine": common.machine(), "quick": quick, "models": {}}
    for key in keys:
        result["models"][key] = {
            "name": models.MODELS[key].name,
            "settings": {s: measure(key, s, 4 if quick else 100, 1, workdir) for s in SETTINGS},
        }
    return result


def markdown(result: dict) -> str:
    rows = []
    for entry in result["models"].values():
        for m in entry["settings"].values():
            per = m["bytes_per_variable_step"]
            rows.append(
                [
                    entry["name"],
                    str(m["variables"]),
                    f"**{per.get('norm table', 0):.1f}**",
                    common.human_bytes(m["raw"]["norm table"]["first"]),
                    f"{per['histograms']:.1f}" if "histograms" in per else "–",
                    f"{per['kernel grids'] / 1024:.1f} KB" if "kernel grids" in per else "–",
                ]
            )
    return common.markdown_table(
        ["model", "variables", "norm table, B per variable per step", "norm table's names (once)",
         "histograms, B per variable per step", "kernel grid, per conv kernel per image"],
        rows,
    )


if __name__ == "__main__":
    common.cli(__doc__, run, markdown)
