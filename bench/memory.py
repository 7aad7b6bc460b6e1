"""What WeightHealthCallback holds beside the model, by setting: the copy of
the initial weights kept for the distance from them, the weights before the
update (held only while a logged step runs), the buffers the train step
writes into (on the model's device), and the tables kept on the host for the
diagnosis. Counted exactly from the
variables and arrays the callback keeps (`WeightHealthCallback.held_bytes`),
beside the size of the model's own weights.

Run: python bench/memory.py [--quick]
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tb_weightnorm  # noqa: E402
from bench import common, models  # noqa: E402
from tb_weightnorm.writer.optimizer_hook import BEFORE_UPDATE  # noqa: E402

SETTINGS = {
    "defaults": {},
    "every stat, every step": {"every_n_steps": 1, "histogram_every_n_steps": 1, "keep_initial_weights": True},
    "no dist_init (keep_initial_weights=False)": {"keep_initial_weights": False},
    "gradients only (stats=['gradient/*'])": {"stats": ["gradient/*"], "keep_initial_weights": False},
}


def measure(key: str, setting: str, steps: int, workdir: str) -> dict:
    model = models.compiled(key)
    x, y = models.data(key, steps)
    callback = tb_weightnorm.WeightHealthCallback(
        tempfile.mkdtemp(prefix=f"memory_{key}_", dir=workdir), report=None, **SETTINGS[setting]
    )
    model.fit(x, y, batch_size=models.BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    held = callback.held_bytes()
    weights = sum(v.numpy().nbytes for v in model.trainable_variables)
    return {"held": held, "model_weight_bytes": weights, "logged_steps": steps}


def run(quick: bool = False, workdir: Optional[str] = None) -> dict:
    keys = ["small_cnn"] if quick else list(models.MODELS)
    workdir = workdir or tempfile.mkdtemp(prefix="bench_memory_")
    result = {"machine": common.machine(), "quick": quick, "models": {}}
    for key in keys:
        result["models"][key] = {
            "name": models.MODELS[key].name,
            "settings": {s: measure(key, s, 3 if quick else 20, workdir) for s in SETTINGS},
        }
    return result


def markdown(result: dict) -> str:
    rows = []
    for entry in result["models"].values():
        for setting, m in entry["settings"].items():
            held = m["held"]
            device = sum(v for k, v in held.items() if "(host)" not in k)
            host = sum(v for k, v in held.items() if "(host)" in k)
            rows.append(
                [
                    entry["name"],
                    setting,
                    common.human_bytes(m["model_weight_bytes"]),
                    f"**{common.human_bytes(device)}** ({device / m['model_weight_bytes']:.2f}× the weights)",
                    common.human_bytes(held["initial weights"]),
                    common.human_bytes(held[BEFORE_UPDATE]),
                    common.human_bytes(held["norm table buffer"] + held["histogram buffer"]),
                    f"{common.human_bytes(host)} after {m['logged_steps']} steps",
                ]
            )
    return common.markdown_table(
        ["model", "setting", "trainable weights", "held on the model's device (peak, a logged step)",
         "of which W_0 (kept)", "of which W before the update (only while a logged step runs)",
         "of which table buffers", "host, tables for the diagnosis"],
        rows,
    )


if __name__ == "__main__":
    common.cli(__doc__, run, markdown)
