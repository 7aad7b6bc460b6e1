"""What monitoring costs a training run: the same model trained with and
without each way of logging, in pairs, interleaved; the figure is the median
of the per-pair ratios of training time.

A fit's time runs from the end of its second step (so tracing and compiling,
paid once per fit, stay out) to the end of `on_train_end` (so work done at
epoch ends and at the end is in). Each fit runs `epochs` epochs of `steps`
steps on the same model, which keeps training from pair to pair.

Run: python bench/overhead.py [--quick] [--models small_cnn mlp_200] [--pairs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

import tb_weightnorm  # noqa: E402
from bench import common, models  # noqa: E402

# Steps per epoch and epochs per fit, per model: a fit takes a few seconds,
# long enough that the end-of-epoch work of every variant is in it.
STEPS = {"small_cnn": 60, "mobilenet_v2": 30, "mlp_200": 150}
EPOCHS = 2
PAIRS = 3


def _ours_default(log_dir, x, y):
    return [tb_weightnorm.WeightHealthCallback(log_dir, report=None)]


def _ours_everything(log_dir, x, y):
    return [
        tb_weightnorm.WeightHealthCallback(
            log_dir,
            every_n_steps=1,
            histogram_every_n_steps=1,
            kernel_grid_every_n_epochs=1,
            keep_initial_weights=True,
            report=None,
        )
    ]


def _keras_tensorboard(log_dir, x, y):
    return [keras.callbacks.TensorBoard(log_dir, histogram_freq=1, write_images=True)]


def _gradient_tape_recipe(log_dir, x, y):
    return [models.GradientHistogramRecipe(log_dir, x, y, every_n_batches=10)]


# key -> (what it is, callbacks(log_dir, x, y)).
VARIANTS: Dict[str, tuple] = {
    "ours_default": ("WeightHealthCallback, defaults", _ours_default),
    "ours_everything": ("WeightHealthCallback, every stat every step (+ histograms every step)", _ours_everything),
    "keras_tensorboard": ("Keras TensorBoard(histogram_freq=1, write_images=True)", _keras_tensorboard),
    "gradient_tape_recipe": ("second GradientTape pass every 10 steps + histograms", _gradient_tape_recipe),
}


class _Timer(keras.callbacks.Callback):
    """Time from the end of the second step to the end of training, and from
    the call of fit to the end of the second step; goes last in the callback
    list so every other callback's work is inside.

    Tracing is paid in the first step of a model's first logged fit (the
    logging step, kept for its later fits), so the steady state starts after
    the second step, and the time before it is reported on its own.
    """

    # Wall time is what a user waits; the process's CPU time (all its
    # threads) is what its own work costs, and hardly moves when other
    # processes share the machine.
    WARM_STEPS = 2

    def __init__(self):
        super().__init__()
        self.called = (time.perf_counter(), time.process_time())
        self.start: Optional[Tuple[float, float]] = None
        self.seconds: Optional[Tuple[float, float]] = None
        self.startup: Optional[float] = None
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches == self.WARM_STEPS:
            self.start = (time.perf_counter(), time.process_time())
            self.startup = self.start[0] - self.called[0]

    def on_train_end(self, logs=None):
        self.seconds = (time.perf_counter() - self.start[0], time.process_time() - self.start[1])


def _timed_fit(model, x, y, epochs: int, callbacks: List[keras.callbacks.Callback]) -> Tuple[float, float, float]:
    """(wall seconds, CPU seconds) from the end of the second step to the end
    of training, and wall seconds from the call of fit to the end of the second step."""
    timer = _Timer()
    model.fit(x, y, batch_size=models.BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks + [timer])
    return (*timer.seconds, timer.startup)


def measure_model(
    key: str,
    variants: Sequence[str],
    *,
    pairs: int,
    steps: int,
    epochs: int,
    workdir: str,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Per-pair ratios of each variant against plain training of model `key`."""
    model = models.compiled(key)
    x, y = models.data(key, steps)
    _timed_fit(model, x, y, 1, [])  # warm up: first trace, allocator, caches
    baseline: Dict[str, List[Tuple[float, float, float]]] = {v: [] for v in variants}
    measured: Dict[str, List[Tuple[float, float, float]]] = {v: [] for v in variants}
    for pair in range(pairs):
        for variant in variants:
            log_dir = tempfile.mkdtemp(prefix=f"{key}_{variant}_", dir=workdir)
            make = VARIANTS[variant][1]
            # Alternate which of the two runs first, so a drift of the
            # machine's speed does not favour either.
            runs = [("base", []), ("variant", make(log_dir, x, y))]
            if pair % 2:
                runs.reverse()
            for role, callbacks in runs:
                seconds = _timed_fit(model, x, y, epochs, callbacks)
                (baseline if role == "base" else measured)[variant].append(seconds)
        progress(f"{key}: pair {pair + 1}/{pairs}")
    timed_steps = epochs * steps - _Timer.WARM_STEPS
    all_base = [t[0] for v in variants for t in baseline[v]]

    def ratios(variant: str, which: int) -> dict:
        return common.paired_ratios([t[which] for t in baseline[variant]], [t[which] for t in measured[variant]])

    return {
        "name": models.MODELS[key].name,
        "variables": len(model.trainable_variables),
        "parameters": int(sum(v.numpy().size for v in model.trainable_variables)),
        "steps_per_fit": epochs * steps,
        "baseline_ms_per_step": 1000 * sorted(all_base)[len(all_base) // 2] / timed_steps,
        "variants": {v: ratios(v, 0) for v in variants},
        "variants_cpu": {v: ratios(v, 1) for v in variants},
        # Seconds a fit's first two steps (tracing) take beyond plain training's.
        "startup_extra_s": {v: statistics.median([m[2] - b[2] for b, m in zip(baseline[v], measured[v])]) for v in variants},
    }



def run(quick: bool = False, workdir: Optional[str] = None, model_keys: Optional[Sequence[str]] = None,
        pairs: Optional[int] = None, progress: Callable[[str], None] = lambda message: None) -> dict:
    """Measures every variant on every model.

    Args:
        quick: one pair of short fits on the small CNN (a smoke run).
        workdir: where the runs' logs go (a temporary folder if None).
        model_keys: a subset of `models.MODELS`.
        pairs: pairs per variant (default `PAIRS`).
    """
    keys = list(model_keys or (["small_cnn"] if quick else list(models.MODELS)))
    workdir = workdir or tempfile.mkdtemp(prefix="bench_overhead_")
    return common.each_model(keys, quick, lambda key: measure_model(
        key,
        list(VARIANTS),
        pairs=1 if quick else (pairs or PAIRS),
        steps=3 if quick else STEPS[key],
        epochs=EPOCHS,
        workdir=workdir,
        progress=progress,
    ))


def markdown(result: dict) -> str:
    keys = list(result["models"])
    header = ["logging"] + [result["models"][k]["name"] for k in keys]
    rows = []
    for variant, (label, _) in VARIANTS.items():
        cells = [label]
        for key in keys:
            r = result["models"][key]["variants"].get(variant)
            cpu = result["models"][key].get("variants_cpu", {}).get(variant)
            cell = f"**{r['median']:.3f}×** ({r['min']:.3f}–{r['max']:.3f})" if r else "–"
            if r and cpu:
                cell += f"; CPU {cpu['median']:.3f}×"
            startup = result["models"][key].get("startup_extra_s", {}).get(variant)
            if startup is not None:
                cell += f"; first steps +{startup:.1f} s"
            cells.append(cell)
        rows.append(cells)
    rows.append(
        ["plain training, ms per step"]
        + [f"{result['models'][k]['baseline_ms_per_step']:.1f}" for k in keys]
    )
    rows.append(["trainable variables"] + [str(result["models"][k]["variables"]) for k in keys])
    pairs = {result["models"][k]["variants"][v]["pairs"] for k in keys for v in result["models"][k]["variants"]}
    steps = ", ".join(f"{result['models'][k]['name']} {result['models'][k]['steps_per_fit']}" for k in keys)
    return (
        common.markdown_table(header, rows)
        + f"\n\nMedian of {'/'.join(map(str, sorted(pairs)))} per-pair ratios of wall time (min–max in brackets), "
        + "then the median ratio of the process's CPU time, both from the end of the second step "
        + "to the end of training; then the median extra seconds of the first two steps (tracing), once per fit; "
        + f"steps per fit: {steps}."
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--models", nargs="*", choices=list(models.MODELS))
    parser.add_argument("--pairs", type=int)
    args = parser.parse_args(argv)
    result = run(args.quick, model_keys=args.models, pairs=args.pairs, progress=lambda m: print(m, file=sys.stderr))
    print(markdown(result))


if __name__ == "__main__":
    main()
